/**
 * The partner's key pair and certificate (step 2 of the flow), in PARTNER_CERT_DIR (0700), one
 * generation per certificate (generations.ts has the layout):
 *
 *   partner.key.pem  PKCS#8 private key, 0600, never leaves this machine   (a key in a file)
 *   partner.key.p11  the PKCS#11 URI of a key that never leaves its token  (a key in an HSM)
 *   partner.crt.pem  the certificate (PEM), used by MSAL for the thumbprint
 *   partner.cer      the same certificate as DER: the file sent to the API owner (step 3)
 *
 * CertificateStore creates, imports, switches and reads generations. Reading one and its checks
 * are in credential-reader.ts, keys in a token in key-in-token.ts, `cert csr` and `cert import` in
 * certificate-import.ts; the credential's types and the store's errors in credential.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  assertCertificateValidAt,
  CertificateError,
  createSelfSignedCertificate,
  createSelfSignedCertificateWithSigner,
  encryptPrivateKey,
  parseCertificate,
  writeFileAtomic,
  type ParsedCertificate,
  type RsaKeySize,
} from '@certflow/certs';
import {
  createPendingCsr,
  createPendingCsrInToken,
  readImport,
  removePendingKey,
  type ImportOptions,
  type PendingCsr,
} from './certificate-import';
import {
  CertificateStoreError,
  guardLayout,
  type CertificatePaths,
  type KeyMaterial,
  type PartnerCredential,
  type StoreReadOptions,
} from './credential';
import { readCredential } from './credential-reader';
import { ROTATION_JOURNAL_FILE } from './rotation-journal';
import { acquireRotationLock } from './rotation-lock';
import {
  CERTIFICATE_FILE,
  CER_FILE,
  generationBaseName,
  GenerationLayout,
  KEY_ID_FILE,
  KEY_REFERENCE_FILE,
  PRIVATE_KEY_FILE,
} from './generations';
import { storedKeyUri, withNewTokenKey } from './key-in-token';

export { CERTIFICATE_FILE, CER_FILE, KEY_ID_FILE, KEY_REFERENCE_FILE, PRIVATE_KEY_FILE } from './generations';
export {
  CSR_FILE,
  PENDING_KEY_FILE,
  PENDING_KEY_REFERENCE_FILE,
  type ImportOptions,
} from './certificate-import';
export {
  CertificateStoreError,
  type CertificatePaths,
  type CertificateStoreErrorCode,
  type KeyMaterial,
  type KeyProtection,
  type PartnerCredential,
  type StoreReadOptions,
} from './credential';

export const DEFAULT_COMMON_NAME = 'certflow-partner';
export const DEFAULT_VALIDITY_DAYS = 365;
export const MAX_VALIDITY_DAYS = 3650;
/** `cert show` and the CLI warn when fewer days than this remain. */
export const EXPIRY_WARNING_DAYS = 30;

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
    return guardLayout(() => this.layout.current()) !== undefined || this.firstLayoutFiles().length > 0;
  }

  private firstLayoutFiles(): string[] {
    return [PRIVATE_KEY_FILE, KEY_REFERENCE_FILE, CERTIFICATE_FILE, CER_FILE]
      .map((name) => join(this.directory, name))
      .filter((path) => existsSync(path));
  }

  /** Whether the certificate in use has its key inside a PKCS#11 token (its partner.key.p11). */
  keyInToken(): boolean {
    return existsSync(
      join(
        guardLayout(() => this.layout.activeDirectory()),
        KEY_REFERENCE_FILE,
      ),
    );
  }

  currentGeneration(): string | undefined {
    return guardLayout(() => this.layout.current());
  }

  generations(): string[] {
    return this.layout.list();
  }

  /** Generates a key pair (in memory) and a self-signed certificate, written as the new current generation. */
  create(opts: CreateOptions = {}): PartnerCredential {
    const { commonName, days } = validateCreate(opts);
    return this.exclusive(opts.force, () => this.createFile(commonName, days, opts));
  }

  private createFile(commonName: string, days: number, opts: CreateOptions): PartnerCredential {
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
  createInToken(opts: TokenCreateOptions): Promise<PartnerCredential> {
    const { commonName, days } = validateCreate(opts);
    return this.exclusive(opts.force, () => this.createTokenKey(commonName, days, opts));
  }

  private async createTokenKey(
    commonName: string,
    days: number,
    opts: TokenCreateOptions,
  ): Promise<PartnerCredential> {
    await withNewTokenKey(
      opts.keyStore,
      this.directory,
      opts.env,
      opts.keySize ?? 2048,
      async (keyUri, signer) => {
        const certificatePem = await createSelfSignedCertificateWithSigner(signer, {
          commonName,
          days,
          ...(opts.now ? { now: opts.now } : {}),
        });
        const gen = this.writeGeneration(parseCertificate(certificatePem), { kind: 'pkcs11', uri: keyUri });
        this.switchTo(gen);
      },
    );
    // The key store given is configuration: its module and PIN source open the key just made.
    return this.read({ env: { ...opts.env, PARTNER_KEY_STORE: opts.keyStore } });
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
    const files: Record<string, { data: string | Uint8Array; mode: number }> = {
      [CERTIFICATE_FILE]: { data: certificate.pem, mode: 0o644 },
      [CER_FILE]: { data: certificate.der, mode: 0o644 },
    };
    if (key.kind === 'file') {
      const atRest = opts.passphrase
        ? encryptPrivateKey(key.privateKeyPem, opts.passphrase)
        : key.privateKeyPem;
      files[PRIVATE_KEY_FILE] = { data: atRest, mode: 0o600 };
    } else {
      files[KEY_REFERENCE_FILE] = { data: `${storedKeyUri(key.uri)}\n`, mode: 0o600 };
    }
    if (opts.keyId !== undefined) files[KEY_ID_FILE] = { data: `${keyIdOrThrow(opts.keyId)}\n`, mode: 0o644 };
    return guardLayout(() => this.layout.write(generationBaseName(certificate), files));
  }

  /**
   * The key file encrypted again with today's key derivation under `passphrase`: a new
   * generation with the same certificate and keyId, made current in one step; the old
   * generation (and its weaker file) is deleted.
   */
  reencrypt(opts: StoreReadOptions, passphrase: string): PartnerCredential {
    return this.exclusive(true, () => this.reencryptKeyFile(opts, passphrase));
  }

  private reencryptKeyFile(opts: StoreReadOptions, passphrase: string): PartnerCredential {
    const current = this.read(opts);
    current.close();
    if (current.privateKeyPem === undefined)
      throw new CertificateStoreError(
        'ERR_KEY_IN_TOKEN',
        `the private key is inside a PKCS#11 token (${current.keyUri}), guarded by the token and its PIN: there is no key file to encrypt`,
      );
    const old = current.generation ?? guardLayout(() => this.layout.adoptFirstLayout())!;
    const keyId = this.keyIdOf(old);
    const gen = this.writeGeneration(
      current.certificate,
      { kind: 'file', privateKeyPem: current.privateKeyPem },
      { passphrase, ...(keyId !== undefined ? { keyId } : {}) },
    );
    this.switchTo(gen);
    // The old generation, and the copies an interrupted reencrypt or adoption left: the same
    // certificate with a key file encrypted the old way must not stay behind.
    for (const other of this.generations())
      if (other !== gen && this.holdsCertificate(other, current.certificate)) this.removeGeneration(other);
    return this.readGeneration(gen, { ...opts, passphrase });
  }

  /** Whether generation `gen` holds `certificate` (its partner.crt.pem, byte for byte in DER). */
  private holdsCertificate(gen: string, certificate: ParsedCertificate): boolean {
    try {
      return parseCertificate(readFileSync(join(this.layout.path(gen), CERTIFICATE_FILE))).der.equals(
        certificate.der,
      );
    } catch {
      return false;
    }
  }

  /** Points `current` at `gen` by one rename (adopting a directory of the first layout first). */
  switchTo(gen: string): void {
    guardLayout(() => this.layout.switchTo(gen));
  }

  /** Deletes a generation directory (never the current one). Keys in a token are not touched. */
  removeGeneration(gen: string): void {
    guardLayout(() => this.layout.remove(gen));
  }

  /** Removes what a killed process left half-made; only under the rotation lock. */
  removeLeftovers(): string[] {
    return guardLayout(() => this.layout.removeLeftovers());
  }

  /** The keyId Graph gave the generation's certificate, when known. */
  keyIdOf(gen: string): string | undefined {
    const path = this.keyIdFile(gen);
    if (!existsSync(path)) return undefined;
    const text = readFileSync(path, 'utf8').trim();
    if (!isKeyId(text))
      throw new CertificateStoreError('ERR_STATE_DAMAGED', `${path} does not hold a keyId (a GUID)`, path);
    return text.toLowerCase();
  }

  setKeyId(gen: string, keyId: string): void {
    writeFileAtomic(this.keyIdFile(gen), `${keyIdOrThrow(keyId)}\n`, 0o644);
  }

  private keyIdFile(gen: string): string {
    return join(
      guardLayout(() => this.layout.path(gen)),
      KEY_ID_FILE,
    );
  }

  /** Records the keyId of the certificate in use (adopting a directory of the first layout as a generation first). */
  setCurrentKeyId(keyId: string): void {
    const gen = guardLayout(() => this.layout.adoptFirstLayout());
    if (gen === undefined)
      throw new CertificateStoreError(
        'ERR_CERT_NOT_FOUND',
        `no partner certificate in ${this.directory}; create one with "cert create"`,
        this.directory,
      );
    this.setKeyId(gen, keyId);
  }

  /**
   * Runs a command that writes a new current generation (create, import, reencrypt) as the one
   * writer of the directory: under the rotation lock, refused while a rotation is unfinished
   * (its journal would later switch away from what is written now) and, without `force`, when
   * a certificate is here; then it sweeps what a killed command left half-made. A directory
   * that does not exist yet has no rotation and is not created for a command that fails.
   */
  private exclusive<T>(force: boolean | undefined, write: () => T): T {
    const lock = existsSync(this.directory) ? acquireRotationLock(this.directory) : undefined;
    let result: T;
    try {
      const journal = join(this.directory, ROTATION_JOURNAL_FILE);
      if (existsSync(journal))
        throw new CertificateStoreError(
          'ERR_ROTATION_UNDER_WAY',
          `a certificate rotation is under way in ${this.directory} (${ROTATION_JOURNAL_FILE}): run "cert rotate" to finish it first; nothing was changed`,
          journal,
        );
      this.refuseOverwrite(force);
      if (lock) this.removeLeftovers();
      result = write();
    } catch (err) {
      lock?.release();
      throw err;
    }
    if (result instanceof Promise) return result.finally(() => lock?.release()) as T;
    lock?.release();
    return result;
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
  ): PendingCsr {
    return createPendingCsr(this.directory, { ...opts, commonName: opts.commonName ?? DEFAULT_COMMON_NAME });
  }

  /** `cert csr --key-store pkcs11:…`: the new key is made in the token; its URI waits in partner.pending.key.p11. */
  createCsrInToken(opts: {
    keyStore: string;
    commonName?: string;
    organization?: string;
    keySize?: RsaKeySize;
    env?: StoreReadOptions['env'];
  }): Promise<PendingCsr> {
    return createPendingCsrInToken(this.directory, {
      ...opts,
      commonName: opts.commonName ?? DEFAULT_COMMON_NAME,
    });
  }

  /**
   * Imports a certificate obtained elsewhere: a PFX with its password, or a certificate with its
   * key (or with the pending key of `cert csr`, in a file or in a token). Checked before anything
   * is written: the password, that the key belongs to the certificate, that it is valid now.
   */
  import(opts: ImportOptions): PartnerCredential {
    return this.exclusive(opts.force, () => this.importChecked(opts));
  }

  private importChecked(opts: ImportOptions): PartnerCredential {
    const { certificate, key, pending } = readImport(this.directory, opts);
    const credential = this.install(certificate, key, {
      ...(key.kind === 'file' && opts.passphrase ? { passphrase: opts.passphrase } : {}),
      ...(opts.env ? { env: opts.env } : {}),
    });
    if (pending !== undefined) removePendingKey(this.directory, pending);
    return credential;
  }

  /**
   * Reads and cross-checks the current generation without looking at the clock (for `cert
   * show`, which also shows an expired certificate). A key in a token opens a session: close()
   * the credential when done.
   */
  read(opts: StoreReadOptions = {}): PartnerCredential {
    return readCredential(this.layout, this.currentGeneration(), opts);
  }

  readGeneration(gen: string, opts: StoreReadOptions = {}): PartnerCredential {
    return readCredential(this.layout, gen, opts);
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
}

const KEY_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function isKeyId(value: string): boolean {
  return KEY_ID.test(value);
}

function keyIdOrThrow(keyId: string): string {
  if (!isKeyId(keyId)) throw new TypeError(`a keyId is a GUID, got ${JSON.stringify(keyId)}`);
  return keyId.toLowerCase();
}
