/**
 * The partner's key pair and certificate (step 2 of the flow), in PARTNER_CERT_DIR (0700), one
 * generation per certificate (generations.ts has the layout):
 *
 *   partner.key.pem  PKCS#8 private key, 0600, never leaves this machine   (a key in a file)
 *   partner.key.p11  the PKCS#11 URI of a key that never leaves its token  (a key in an HSM)
 *   partner.crt.pem  the certificate (PEM), used by MSAL for the thumbprint
 *   partner.cer      the same certificate as DER: the file sent to the API owner (step 3)
 *
 * Reading checks everything that would otherwise fail later and obscurely at the token endpoint:
 * the files present and readable, exactly one key, the key belongs to the certificate, the `.cer`
 * is the same certificate, a key file not readable by others, the certificate valid now.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  assertCertificateValidAt,
  assertKeyMatchesCertificate,
  CertificateError,
  createCsr,
  createCsrWithSigner,
  createSelfSignedCertificate,
  createSelfSignedCertificateWithSigner,
  describeKeyEncryption,
  encryptPrivateKey,
  fileKeySigner,
  importPkcs12,
  isEncryptedPrivateKey,
  parseCertificate,
  readPrivateKey,
  writeFileAtomic,
  writePrivateKeyFile,
  type CertificateErrorCode,
  type KeyEncryption,
  type KeySigner,
  type ParsedCertificate,
  type RsaKeySize,
} from '@certflow/certs';
import {
  formatPkcs11Uri,
  parsePkcs11Uri,
  Pkcs11Error,
  Pkcs11Token,
  resolvePkcs11Settings,
  type Pkcs11KeyAttributes,
  type Pkcs11Uri,
} from '@certflow/pkcs11';
import {
  CERTIFICATE_FILE,
  CER_FILE,
  generationBaseName,
  GenerationLayout,
  KEY_ID_FILE,
  KEY_REFERENCE_FILE,
  LayoutError,
  PRIVATE_KEY_FILE,
} from './generations';

export { CERTIFICATE_FILE, CER_FILE, KEY_ID_FILE, KEY_REFERENCE_FILE, PRIVATE_KEY_FILE } from './generations';
/** `cert csr` leaves the new key here (or its token reference) until the CA's certificate is imported. */
export const PENDING_KEY_FILE = 'partner.pending.key.pem';
export const PENDING_KEY_REFERENCE_FILE = 'partner.pending.key.p11';
export const CSR_FILE = 'partner.csr.pem';

export const DEFAULT_COMMON_NAME = 'certflow-partner';
export const DEFAULT_VALIDITY_DAYS = 365;
export const MAX_VALIDITY_DAYS = 3650;
/** `cert show` and the CLI warn when fewer days than this remain. */
export const EXPIRY_WARNING_DAYS = 30;

export type CertificateStoreErrorCode =
  | CertificateErrorCode
  | 'ERR_CERT_NOT_FOUND'
  | 'ERR_CERT_INCOMPLETE'
  | 'ERR_CERT_EXISTS'
  | 'ERR_KEY_PERMISSIONS'
  | 'ERR_KEY_IN_TOKEN'
  | 'ERR_NO_PENDING_KEY';

export class CertificateStoreError extends Error {
  override readonly name = 'CertificateStoreError';
  constructor(
    readonly code: CertificateStoreErrorCode | Pkcs11Error['code'],
    message: string,
    /** The file at fault, when there is one. */
    readonly path?: string,
  ) {
    super(message);
  }
}

/** What a generation holds as its key: a PKCS#8 PEM, or the URI of a key inside a PKCS#11 token. */
export type KeyMaterial = { kind: 'file'; privateKeyPem: string } | { kind: 'pkcs11'; uri: string };

export interface CertificatePaths {
  directory: string;
  certificatePath: string;
  cerPath: string;
  /** A key in a file. */
  privateKeyPath?: string;
  /** A key in a PKCS#11 token: its URI (never a PIN). */
  keyUri?: string;
}

/** How the private key is protected: its file's encryption (undefined: none), or the token's attributes. */
export type KeyProtection =
  | { store: 'file'; encryption: KeyEncryption | undefined }
  | { store: 'pkcs11'; attributes: Pkcs11KeyAttributes };

export interface PartnerCredential extends CertificatePaths {
  /** The generation read; undefined for a directory of the first layout. */
  generation: string | undefined;
  certificate: ParsedCertificate;
  /** Signs with the private key, wherever it is. */
  signer: KeySigner;
  keyProtection: KeyProtection;
  /** Keys in a file only: the PKCS#8 PEM (MSAL's clientCertificate takes it); keep it in memory only. */
  privateKeyPem?: string;
  /** Releases the token session of a key in a token; nothing for a file. Idempotent. */
  close(): void;
}

/** Opens what reading a key needs: the passphrase of a key file, the PKCS#11 module and PIN. */
export interface StoreReadOptions {
  passphrase?: string;
  /** PARTNER_PKCS11_MODULE and PARTNER_PKCS11_PIN, where the key's URI does not name them. */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface CreateOptions {
  commonName?: string;
  days?: number;
  /** Replace an existing certificate (the old generation is kept in generations/, not current). */
  force?: boolean;
  now?: Date;
  /** Encrypt the private key at rest (encrypted PKCS#8, PBKDF2-SHA256); at least 8 characters. */
  passphrase?: string;
  /** RSA modulus length (default 2048). */
  keySize?: RsaKeySize;
}

export interface TokenCreateOptions extends Omit<CreateOptions, 'passphrase'> {
  /** Where to make the key: a PKCS#11 URI naming the token and the new key's label (`object=`). */
  keyStore: string;
  env?: StoreReadOptions['env'];
}

export interface ImportOptions {
  /** A PFX/PKCS#12 bundle and its password… */
  pfx?: Uint8Array;
  pfxPassword?: string;
  /** …or a certificate (PEM or DER) with its key (PKCS#1/PKCS#8/encrypted PKCS#8 PEM). */
  certificate?: Uint8Array | string;
  /** Without it (and without pfx), the pending key from `cert csr` is used. */
  privateKeyPem?: string;
  keyPassphrase?: string;
  force?: boolean;
  /** Encrypt the stored key at rest. */
  passphrase?: string;
  /** The PKCS#11 settings of a pending key that `cert csr` made in a token. */
  env?: StoreReadOptions['env'];
  now?: Date;
}

function validateCreate(opts: CreateOptions): { commonName: string; days: number } {
  const commonName = opts.commonName ?? DEFAULT_COMMON_NAME;
  const days = opts.days ?? DEFAULT_VALIDITY_DAYS;
  if (commonName.trim() === '') throw new TypeError('the common name must not be empty');
  if (!Number.isInteger(days) || days < 1 || days > MAX_VALIDITY_DAYS) {
    throw new TypeError(`days must be a whole number from 1 to ${MAX_VALIDITY_DAYS}, got ${days}`);
  }
  return { commonName, days };
}

export class CertificateStore {
  /** The paths in PARTNER_CERT_DIR (links into the current generation). */
  readonly paths: Required<Omit<CertificatePaths, 'keyUri'>> & { keyReferencePath: string };
  readonly keyIdPath: string;
  private readonly layout: GenerationLayout;

  constructor(readonly directory: string) {
    this.layout = new GenerationLayout(directory);
    this.paths = {
      directory,
      privateKeyPath: join(directory, PRIVATE_KEY_FILE),
      keyReferencePath: join(directory, KEY_REFERENCE_FILE),
      certificatePath: join(directory, CERTIFICATE_FILE),
      cerPath: join(directory, CER_FILE),
    };
    this.keyIdPath = join(directory, KEY_ID_FILE);
  }

  /** True when a certificate (or any part of one) is here. */
  exists(): boolean {
    return this.guard(() => this.layout.current()) !== undefined || this.firstLayoutFiles().length > 0;
  }

  private firstLayoutFiles(): string[] {
    return [PRIVATE_KEY_FILE, KEY_REFERENCE_FILE, CERTIFICATE_FILE, CER_FILE]
      .map((name) => join(this.directory, name))
      .filter((path) => existsSync(path));
  }

  currentGeneration(): string | undefined {
    return this.guard(() => this.layout.current());
  }

  generations(): string[] {
    return this.layout.list();
  }

  /** Generates a key pair (in memory) and a self-signed certificate, written as the new current generation. */
  create(opts: CreateOptions = {}): PartnerCredential {
    const { commonName, days } = validateCreate(opts);
    this.refuseOverwrite(opts.force);
    const pair = createSelfSignedCertificate({
      commonName,
      days,
      ...(opts.keySize ? { keySize: opts.keySize } : {}),
      ...(opts.now ? { now: opts.now } : {}),
    });
    return this.install(
      parseCertificate(pair.certificatePem),
      { kind: 'file', privateKeyPem: pair.privateKeyPem },
      opts.passphrase ? { passphrase: opts.passphrase } : {},
    );
  }

  /**
   * Generates the key pair inside a PKCS#11 token (sensitive, not extractable) and a certificate
   * signed through the token. A failure after the key was made deletes it again: nothing changes.
   */
  async createInToken(opts: TokenCreateOptions): Promise<PartnerCredential> {
    const { commonName, days } = validateCreate(opts);
    this.refuseOverwrite(opts.force);
    const { token, uri } = this.openToken(opts.keyStore, opts.env);
    let keyUri: string | undefined;
    try {
      keyUri = generateInToken(token, uri, opts.keySize ?? 2048);
      const signer = token.signer(parsePkcs11Uri(keyUri));
      const certificatePem = await createSelfSignedCertificateWithSigner(signer, {
        commonName,
        days,
        ...(opts.now ? { now: opts.now } : {}),
      });
      const gen = this.writeGeneration(parseCertificate(certificatePem), { kind: 'pkcs11', uri: keyUri });
      this.switchTo(gen);
    } catch (err) {
      if (keyUri !== undefined) token.deleteKeyPair(parsePkcs11Uri(keyUri));
      token.close();
      throw err;
    }
    token.close();
    return this.read({ ...(opts.env ? { env: opts.env } : {}) });
  }

  /** Writes a generation and makes it current. */
  private install(
    certificate: ParsedCertificate,
    key: KeyMaterial,
    read: StoreReadOptions = {},
  ): PartnerCredential {
    const gen = this.writeGeneration(
      certificate,
      key,
      read.passphrase ? { passphrase: read.passphrase } : {},
    );
    this.switchTo(gen);
    return this.readGeneration(gen, read);
  }

  /** Writes a complete generation (temporary directory + rename), not made current. Returns its name. */
  writeGeneration(
    certificate: ParsedCertificate,
    key: KeyMaterial,
    opts: { passphrase?: string; keyId?: string } = {},
  ): string {
    const files = certificateFiles(certificate);
    if (key.kind === 'file') {
      const atRest = opts.passphrase
        ? encryptPrivateKey(key.privateKeyPem, opts.passphrase)
        : key.privateKeyPem;
      files[PRIVATE_KEY_FILE] = { data: atRest, mode: 0o600 };
    } else {
      files[KEY_REFERENCE_FILE] = { data: `${formatPkcs11Uri(parsePkcs11Uri(key.uri))}\n`, mode: 0o600 };
    }
    if (opts.keyId !== undefined) files[KEY_ID_FILE] = { data: `${keyIdOrThrow(opts.keyId)}\n`, mode: 0o644 };
    return this.guard(() => this.layout.write(generationBaseName(certificate), files));
  }

  /**
   * The key file encrypted again with today's key derivation under `passphrase`: a new
   * generation with the same certificate and keyId, made current in one step; the old
   * generation (and its weaker file) is deleted.
   */
  reencrypt(opts: StoreReadOptions, passphrase: string): PartnerCredential {
    if (existsSync(join(this.directory, 'rotation.json')))
      throw new CertificateStoreError(
        'ERR_STATE_DAMAGED',
        `a rotation is under way in ${this.directory} (rotation.json): finish it with "cert rotate" first`,
        join(this.directory, 'rotation.json'),
      );
    const current = this.read(opts);
    current.close();
    if (current.privateKeyPem === undefined)
      throw new CertificateStoreError(
        'ERR_KEY_IN_TOKEN',
        `the private key is inside a PKCS#11 token (${current.keyUri}), guarded by the token and its PIN: there is no key file to encrypt`,
      );
    const old = current.generation ?? this.guard(() => this.layout.adoptFirstLayout())!;
    const keyId = this.keyIdOf(old);
    const gen = this.writeGeneration(
      current.certificate,
      { kind: 'file', privateKeyPem: current.privateKeyPem },
      { passphrase, ...(keyId !== undefined ? { keyId } : {}) },
    );
    this.switchTo(gen);
    this.removeGeneration(old);
    return this.readGeneration(gen, { ...opts, passphrase });
  }

  /** Points `current` at `gen` by one rename (adopting a directory of the first layout first). */
  switchTo(gen: string): void {
    this.guard(() => this.layout.switchTo(gen));
  }

  /** Deletes a generation directory (never the current one). Keys in a token are not touched. */
  removeGeneration(gen: string): void {
    this.guard(() => this.layout.remove(gen));
  }

  /** Removes what a killed process left half-made; only under the rotation lock. */
  removeLeftovers(): string[] {
    return this.guard(() => this.layout.removeLeftovers());
  }

  /** The keyId Graph gave the generation's certificate, when known. */
  keyIdOf(gen: string): string | undefined {
    const path = join(
      this.guard(() => this.layout.path(gen)),
      KEY_ID_FILE,
    );
    if (!existsSync(path)) return undefined;
    const text = readFileSync(path, 'utf8').trim();
    if (!isKeyId(text))
      throw new CertificateStoreError('ERR_STATE_DAMAGED', `${path} does not hold a keyId (a GUID)`, path);
    return text.toLowerCase();
  }

  setKeyId(gen: string, keyId: string): void {
    writeFileAtomic(
      join(
        this.guard(() => this.layout.path(gen)),
        KEY_ID_FILE,
      ),
      `${keyIdOrThrow(keyId)}\n`,
      0o644,
    );
  }

  /** Records the keyId of the certificate in use (adopting a directory of the first layout as a generation first). */
  setCurrentKeyId(keyId: string): void {
    const gen = this.guard(() => this.layout.adoptFirstLayout());
    if (gen === undefined)
      throw new CertificateStoreError(
        'ERR_CERT_NOT_FOUND',
        `no partner certificate in ${this.directory}; create one with "cert create"`,
        this.directory,
      );
    this.setKeyId(gen, keyId);
  }

  private refuseOverwrite(force: boolean | undefined): void {
    if (force) return;
    const current = this.currentGeneration();
    const existing = current !== undefined ? [this.layout.path(current)] : this.firstLayoutFiles();
    if (existing.length > 0) {
      throw new CertificateStoreError(
        'ERR_CERT_EXISTS',
        `a partner certificate already exists (${existing.join(', ')}); use --force to replace it (the old generation stays in ${join(this.directory, 'generations')}, and the new .cer must be uploaded again)`,
        existing[0],
      );
    }
  }

  /**
   * `cert csr`: a new key (kept as partner.pending.key.pem, 0600) and a CSR to send to a CA.
   * The certificate in use is untouched until `import` brings the issued certificate.
   */
  createCsr(
    opts: { commonName?: string; organization?: string; passphrase?: string; keySize?: RsaKeySize } = {},
  ): {
    csrPem: string;
    csrPath: string;
    pendingKeyPath: string;
  } {
    const { csrPem, privateKeyPem } = createCsr({
      commonName: opts.commonName ?? DEFAULT_COMMON_NAME,
      ...(opts.organization ? { organization: opts.organization } : {}),
      ...(opts.keySize ? { keySize: opts.keySize } : {}),
    });
    const pendingKeyPath = join(this.directory, PENDING_KEY_FILE);
    writePrivateKeyFile(
      pendingKeyPath,
      opts.passphrase ? encryptPrivateKey(privateKeyPem, opts.passphrase) : privateKeyPem,
    );
    rmSync(join(this.directory, PENDING_KEY_REFERENCE_FILE), { force: true });
    return { csrPem, csrPath: this.writeCsr(csrPem), pendingKeyPath };
  }

  /** `cert csr --key-store pkcs11:…`: the new key is made in the token; its URI waits in partner.pending.key.p11. */
  async createCsrInToken(opts: {
    keyStore: string;
    commonName?: string;
    organization?: string;
    keySize?: RsaKeySize;
    env?: StoreReadOptions['env'];
  }): Promise<{ csrPem: string; csrPath: string; pendingKeyPath: string }> {
    const { token, uri } = this.openToken(opts.keyStore, opts.env);
    let keyUri: string | undefined;
    try {
      keyUri = generateInToken(token, uri, opts.keySize ?? 2048);
      const csrPem = await createCsrWithSigner(token.signer(parsePkcs11Uri(keyUri)), {
        commonName: opts.commonName ?? DEFAULT_COMMON_NAME,
        ...(opts.organization ? { organization: opts.organization } : {}),
      });
      const pendingKeyPath = join(this.directory, PENDING_KEY_REFERENCE_FILE);
      writeFileAtomic(pendingKeyPath, `${keyUri}\n`, 0o600);
      rmSync(join(this.directory, PENDING_KEY_FILE), { force: true });
      return { csrPem, csrPath: this.writeCsr(csrPem), pendingKeyPath };
    } catch (err) {
      if (keyUri !== undefined) token.deleteKeyPair(parsePkcs11Uri(keyUri));
      throw err;
    } finally {
      token.close();
    }
  }

  private writeCsr(csrPem: string): string {
    const csrPath = join(this.directory, CSR_FILE);
    writeFileAtomic(csrPath, csrPem, 0o644);
    return csrPath;
  }

  /**
   * Imports a certificate obtained elsewhere: a PFX with its password, or a certificate with its
   * key (or with the pending key of `cert csr`, in a file or in a token). Checked before anything
   * is written: the password, that the key belongs to the certificate, that it is valid now.
   */
  import(opts: ImportOptions): PartnerCredential {
    this.refuseOverwrite(opts.force);
    let certificate: ParsedCertificate;
    let key: KeyMaterial;
    let pending: string | undefined;
    if (opts.pfx) {
      if (opts.certificate || opts.privateKeyPem)
        throw new TypeError('import either a PFX or a certificate with its key, not both');
      const contents = importPkcs12(opts.pfx, opts.pfxPassword ?? '');
      certificate = parseCertificate(contents.certificatePem);
      key = { kind: 'file', privateKeyPem: contents.privateKeyPem };
    } else {
      if (!opts.certificate) throw new TypeError('import needs a PFX or a certificate');
      certificate = parseCertificate(opts.certificate);
      if (opts.privateKeyPem !== undefined) {
        key = { kind: 'file', privateKeyPem: readPrivateKey(opts.privateKeyPem, opts.keyPassphrase) };
      } else {
        ({ key, pending } = this.pendingKey(opts));
      }
    }
    if (key.kind === 'file') assertKeyMatchesCertificate(key.privateKeyPem, certificate);
    else this.withTokenKey(key.uri, opts.env, (signer) => assertSignerMatches(signer, certificate, key.uri));
    assertCertificateValidAt(certificate, opts.now ?? new Date());
    const credential = this.install(certificate, key, {
      ...(key.kind === 'file' && opts.passphrase ? { passphrase: opts.passphrase } : {}),
      ...(opts.env ? { env: opts.env } : {}),
    });
    if (pending !== undefined) {
      rmSync(pending, { force: true });
      rmSync(join(this.directory, CSR_FILE), { force: true });
    }
    return credential;
  }

  private pendingKey(opts: ImportOptions): { key: KeyMaterial; pending: string } {
    const reference = join(this.directory, PENDING_KEY_REFERENCE_FILE);
    if (existsSync(reference))
      return { key: { kind: 'pkcs11', uri: readFileSync(reference, 'utf8').trim() }, pending: reference };
    const pending = join(this.directory, PENDING_KEY_FILE);
    if (!existsSync(pending))
      throw new CertificateStoreError(
        'ERR_NO_PENDING_KEY',
        `no key given and no pending key from "cert csr" in ${this.directory}`,
        pending,
      );
    const privateKeyPem = readPrivateKey(
      readFileSync(pending, 'utf8'),
      opts.passphrase ?? opts.keyPassphrase,
    );
    return { key: { kind: 'file', privateKeyPem }, pending };
  }

  /**
   * Reads and cross-checks the current generation without looking at the clock (for `cert
   * show`, which also shows an expired certificate). A key in a token opens a session: close()
   * the credential when done.
   */
  read(opts: StoreReadOptions = {}): PartnerCredential {
    const gen = this.currentGeneration();
    if (gen === undefined) return this.readDirectory(this.directory, undefined, opts);
    return this.readGeneration(gen, opts);
  }

  readGeneration(gen: string, opts: StoreReadOptions = {}): PartnerCredential {
    return this.readDirectory(
      this.guard(() => this.layout.path(gen)),
      gen,
      opts,
    );
  }

  /** read() plus the validity period: what must hold before any token request. */
  load(now = new Date(), opts: StoreReadOptions = {}): PartnerCredential {
    const credential = this.read(opts);
    try {
      assertCertificateValidAt(credential.certificate, now);
    } catch (err) {
      credential.close();
      if (err instanceof CertificateError) {
        const hint =
          err.code === 'ERR_CERT_EXPIRED'
            ? '; create a new one with "cert create --force" and upload the new .cer'
            : '';
        throw new CertificateStoreError(
          err.code,
          `${credential.certificatePath}: ${err.message}${hint}`,
          credential.certificatePath,
        );
      }
      throw err;
    }
    return credential;
  }

  private readDirectory(
    dir: string,
    generation: string | undefined,
    opts: StoreReadOptions,
  ): PartnerCredential {
    const keyFile = join(dir, PRIVATE_KEY_FILE);
    const keyReference = join(dir, KEY_REFERENCE_FILE);
    const certificatePath = join(dir, CERTIFICATE_FILE);
    const cerPath = join(dir, CER_FILE);
    const keys = [keyFile, keyReference].filter((f) => existsSync(f));
    const missing = [certificatePath, cerPath].filter((f) => !existsSync(f));
    if (keys.length === 0) missing.unshift(keyFile);
    if (missing.length === 3) {
      throw new CertificateStoreError(
        'ERR_CERT_NOT_FOUND',
        `no partner certificate in ${this.directory}; create one with "cert create"`,
        this.directory,
      );
    }
    if (missing.length > 0) {
      throw new CertificateStoreError(
        'ERR_CERT_INCOMPLETE',
        `the partner certificate in ${dir} is incomplete: ${missing.join(', ')} missing; restore it, or replace the key pair with "cert create --force"`,
        missing[0],
      );
    }
    if (keys.length === 2)
      throw new CertificateStoreError(
        'ERR_STATE_DAMAGED',
        `${dir} holds both a key file and a PKCS#11 key reference; one certificate has one key: remove the one that does not belong to ${certificatePath}`,
        keyReference,
      );
    const certificate = this.parseFile(certificatePath);
    const cer = this.parseFile(cerPath);
    if (!cer.der.equals(certificate.der)) {
      throw new CertificateStoreError(
        'ERR_STATE_DAMAGED',
        `${cerPath} is not the same certificate as ${certificatePath} (SHA-256 ${cer.thumbprints.sha256Hex} vs ${certificate.thumbprints.sha256Hex})`,
        cerPath,
      );
    }
    // A file copied over one of the links would otherwise be ignored silently.
    if (generation !== undefined && generation === this.currentGeneration())
      this.guard(() => this.layout.assertNoStrayFiles(generation));
    const paths = { directory: this.directory, generation, certificatePath, cerPath, certificate };
    if (keys[0] === keyReference) {
      const keyUri = this.readText(keyReference).trim();
      const { token, uri } = this.openToken(keyUri, opts.env, keyReference);
      try {
        const signer = inToken(keyReference, () => token.signer(uri));
        assertSignerMatches(signer, certificate, keyReference);
        const attributes = inToken(keyReference, () => token.keyAttributes(uri));
        return {
          ...paths,
          keyUri,
          signer,
          keyProtection: { store: 'pkcs11', attributes },
          close: () => token.close(),
        };
      } catch (err) {
        token.close();
        throw err;
      }
    }
    const { privateKeyPem, stored } = this.readKeyFile(
      keyFile,
      certificatePath,
      certificate,
      opts.passphrase,
    );
    return {
      ...paths,
      privateKeyPath: keyFile,
      privateKeyPem,
      keyProtection: { store: 'file', encryption: describeKeyEncryption(stored) },
      signer: fileKeySigner(privateKeyPem, keyFile),
      close: () => {},
    };
  }

  private readKeyFile(
    keyFile: string,
    certificatePath: string,
    certificate: ParsedCertificate,
    passphrase: string | undefined,
  ): { privateKeyPem: string; stored: string } {
    this.assertPrivateKeyFileMode(keyFile);
    const stored = this.readText(keyFile);
    let privateKeyPem: string;
    if (isEncryptedPrivateKey(stored)) {
      if (!passphrase)
        throw new CertificateStoreError(
          'ERR_KEY_ENCRYPTED',
          `${keyFile} is encrypted; set PARTNER_KEY_PASSPHRASE`,
          keyFile,
        );
      try {
        privateKeyPem = readPrivateKey(stored, passphrase);
      } catch (err) {
        throw this.wrap(
          err instanceof CertificateError && err.code === 'ERR_WRONG_PASSWORD'
            ? new CertificateError(
                'ERR_WRONG_PASSWORD',
                'wrong PARTNER_KEY_PASSPHRASE: cannot decrypt the key',
              )
            : err,
          keyFile,
        );
      }
    } else if (/-{5}BEGIN PRIVATE KEY-{5}/.test(stored)) {
      privateKeyPem = stored;
    } else {
      throw new CertificateStoreError(
        'ERR_KEY_MALFORMED',
        `${keyFile} is not a PKCS#8 PEM key (plain or encrypted)`,
        keyFile,
      );
    }
    try {
      assertKeyMatchesCertificate(privateKeyPem, certificate);
    } catch (err) {
      if (err instanceof CertificateError && err.code === 'ERR_CERT_KEY_MISMATCH') {
        throw new CertificateStoreError(
          'ERR_CERT_KEY_MISMATCH',
          `${keyFile} does not belong to the certificate ${certificatePath}`,
          keyFile,
        );
      }
      throw this.wrap(err, keyFile);
    }
    return { privateKeyPem, stored };
  }

  /** Opens the token a PKCS#11 URI names; its errors become CertificateStoreErrors naming `where`. */
  private openToken(
    text: string,
    env: StoreReadOptions['env'],
    where?: string,
  ): { token: Pkcs11Token; uri: Pkcs11Uri } {
    return inToken(where, () => {
      const uri = parsePkcs11Uri(text);
      return { token: Pkcs11Token.open(uri, resolvePkcs11Settings(uri, env ?? {})), uri };
    });
  }

  private withTokenKey<T>(uri: string, env: StoreReadOptions['env'], use: (signer: KeySigner) => T): T {
    const { token, uri: parsed } = this.openToken(uri, env);
    try {
      return use(inToken(undefined, () => token.signer(parsed)));
    } finally {
      token.close();
    }
  }

  private readText(path: string): string {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new CertificateStoreError(
        'ERR_STATE_DAMAGED',
        `cannot read ${path}: ${(err as Error).message}`,
        path,
      );
    }
  }

  private parseFile(path: string): ParsedCertificate {
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch (err) {
      throw new CertificateStoreError(
        'ERR_STATE_DAMAGED',
        `cannot read ${path}: ${(err as Error).message}`,
        path,
      );
    }
    try {
      return parseCertificate(data);
    } catch (err) {
      throw this.wrap(err, path);
    }
  }

  private assertPrivateKeyFileMode(path: string): void {
    if (process.platform === 'win32') return;
    const mode = statSync(path).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new CertificateStoreError(
        'ERR_KEY_PERMISSIONS',
        `${path} is readable by others (mode ${mode.toString(8).padStart(4, '0')}); run chmod 600 on it`,
        path,
      );
    }
  }

  /** Layout errors (a damaged `current`) are state errors naming the path. */
  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof LayoutError)
        throw new CertificateStoreError('ERR_STATE_DAMAGED', err.message, err.path);
      throw err;
    }
  }

  private wrap(err: unknown, path: string): CertificateStoreError {
    const code = err instanceof CertificateError ? err.code : 'ERR_STATE_DAMAGED';
    return new CertificateStoreError(code, `${path}: ${(err as Error).message}`, path);
  }
}

/** Runs a PKCS#11 operation; its errors become CertificateStoreErrors (same code) naming `where`. */
function inToken<T>(where: string | undefined, operation: () => T): T {
  try {
    return operation();
  } catch (err) {
    if (err instanceof Pkcs11Error)
      throw new CertificateStoreError(err.code, where ? `${where}: ${err.message}` : err.message, where);
    throw err;
  }
}

function certificateFiles(
  certificate: ParsedCertificate,
): Record<string, { data: string | Uint8Array; mode: number }> {
  return {
    [CERTIFICATE_FILE]: { data: certificate.pem, mode: 0o644 },
    [CER_FILE]: { data: certificate.der, mode: 0o644 },
  };
}

/** A key pair in the token the URI names, labelled with its `object`; returns the key's URI. */
function generateInToken(token: Pkcs11Token, uri: Pkcs11Uri, bits: RsaKeySize): string {
  if (!uri.object)
    throw new CertificateStoreError(
      'ERR_PKCS11_URI',
      `the key store URI must name the new key with object=<label> (e.g. pkcs11:token=partner;object=partner-2026)`,
    );
  if (uri.type !== undefined && uri.type !== 'private')
    throw new CertificateStoreError(
      'ERR_PKCS11_URI',
      `the key store URI names type=${uri.type}; a key pair needs type=private or no type`,
    );
  return token.generateRsaKeyPair({ label: uri.object, id: uri.id ?? randomBytes(16), bits });
}

function assertSignerMatches(signer: KeySigner, certificate: ParsedCertificate, where: string): void {
  const spki = (k: ParsedCertificate['publicKey']) => k.export({ type: 'spki', format: 'der' });
  if (!spki(signer.publicKey).equals(spki(certificate.publicKey)))
    throw new CertificateStoreError(
      'ERR_CERT_KEY_MISMATCH',
      `the key ${signer.description} (${where}) does not belong to the certificate ${certificate.subject} (SHA-256 ${certificate.thumbprints.sha256Hex})`,
      where,
    );
}

const KEY_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function isKeyId(value: string): boolean {
  return KEY_ID.test(value);
}

function keyIdOrThrow(keyId: string): string {
  if (!isKeyId(keyId)) throw new TypeError(`a keyId is a GUID, got ${JSON.stringify(keyId)}`);
  return keyId.toLowerCase();
}
