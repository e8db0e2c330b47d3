/**
 * The partner's key pair and certificate on disk (step 2 of the flow):
 *
 *   <dir>/ (0700)
 *     partner.key.pem  PKCS#8 private key, 0600, never leaves this machine
 *     partner.crt.pem  the certificate (PEM), used by MSAL for the thumbprint
 *     partner.cer      the same certificate as DER: the file sent to the API owner (step 3)
 *
 * Loading checks everything that would otherwise fail later and obscurely at the token
 * endpoint: all three files present and readable, the key belongs to the certificate, the
 * `.cer` is the same certificate, the key is not readable by others, the certificate is valid now.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  assertCertificateValidAt,
  assertKeyMatchesCertificate,
  CertificateError,
  createCsr,
  createSelfSignedCertificate,
  encryptPrivateKey,
  importPkcs12,
  isEncryptedPrivateKey,
  readPrivateKey,
  parseCertificate,
  writeFileAtomic,
  writePrivateKeyFile,
  type CertificateErrorCode,
  type ParsedCertificate,
  type RsaKeySize,
} from '@certflow/certs';

export const PRIVATE_KEY_FILE = 'partner.key.pem';
export const CERTIFICATE_FILE = 'partner.crt.pem';
export const CER_FILE = 'partner.cer';
/** `cert csr` leaves the new key here until the CA's certificate is imported. */
export const PENDING_KEY_FILE = 'partner.pending.key.pem';
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
  | 'ERR_NO_PENDING_KEY';

export class CertificateStoreError extends Error {
  override readonly name = 'CertificateStoreError';
  constructor(
    readonly code: CertificateStoreErrorCode,
    message: string,
    /** The file at fault, when there is one. */
    readonly path?: string,
  ) {
    super(message);
  }
}

export interface CertificatePaths {
  directory: string;
  privateKeyPath: string;
  certificatePath: string;
  cerPath: string;
}

export interface PartnerCredential extends CertificatePaths {
  /** PKCS#8 PEM; keep it in memory only. */
  privateKeyPem: string;
  certificate: ParsedCertificate;
}

export interface CreateOptions {
  commonName?: string;
  days?: number;
  /** Replace an existing key pair. Without it, any existing file is an error. */
  force?: boolean;
  now?: Date;
  /** Encrypt the private key at rest (encrypted PKCS#8, AES-256-CBC); at least 8 characters. */
  passphrase?: string;
  /** RSA modulus length (default 2048). */
  keySize?: RsaKeySize;
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
  now?: Date;
}

export class CertificateStore {
  readonly paths: CertificatePaths;

  constructor(readonly directory: string) {
    this.paths = {
      directory,
      privateKeyPath: join(directory, PRIVATE_KEY_FILE),
      certificatePath: join(directory, CERTIFICATE_FILE),
      cerPath: join(directory, CER_FILE),
    };
  }

  private files(): string[] {
    return [this.paths.privateKeyPath, this.paths.certificatePath, this.paths.cerPath];
  }

  /** True when any of the three files exists. */
  exists(): boolean {
    return this.files().some((f) => existsSync(f));
  }

  /** Generates a key pair and a self-signed certificate and writes the three files. */
  create(opts: CreateOptions = {}): PartnerCredential {
    const commonName = opts.commonName ?? DEFAULT_COMMON_NAME;
    const days = opts.days ?? DEFAULT_VALIDITY_DAYS;
    if (commonName.trim() === '') throw new TypeError('the common name must not be empty');
    if (!Number.isInteger(days) || days < 1 || days > MAX_VALIDITY_DAYS) {
      throw new TypeError(`days must be a whole number from 1 to ${MAX_VALIDITY_DAYS}, got ${days}`);
    }
    this.refuseOverwrite(opts.force);

    const pair = createSelfSignedCertificate({
      commonName,
      days,
      ...(opts.keySize ? { keySize: opts.keySize } : {}),
      ...(opts.now ? { now: opts.now } : {}),
    });
    const certificate = parseCertificate(pair.certificatePem);
    return this.write(pair.privateKeyPem, certificate, opts.passphrase);
  }

  /** Writes the three files (the key encrypted when a passphrase is given). */
  private write(
    privateKeyPem: string,
    certificate: ParsedCertificate,
    passphrase?: string,
  ): PartnerCredential {
    mkdirSync(this.directory, { recursive: true, mode: 0o700 });
    if (process.platform !== 'win32') chmodSync(this.directory, 0o700);
    const atRest = passphrase ? encryptPrivateKey(privateKeyPem, passphrase) : privateKeyPem;
    // Key first: a crash between writes leaves a key without a matching certificate, which
    // load() reports as a mismatch, never a certificate whose key is gone.
    writePrivateKeyFile(this.paths.privateKeyPath, atRest);
    writeFileAtomic(this.paths.certificatePath, certificate.pem, 0o644);
    writeFileAtomic(this.paths.cerPath, certificate.der, 0o644);
    return { ...this.paths, privateKeyPem, certificate };
  }

  private refuseOverwrite(force: boolean | undefined): void {
    const existing = this.files().filter((f) => existsSync(f));
    if (existing.length > 0 && !force) {
      throw new CertificateStoreError(
        'ERR_CERT_EXISTS',
        `a partner certificate already exists (${existing.join(', ')}); use --force to replace it (the old key is lost, and the new .cer must be uploaded again)`,
        existing[0],
      );
    }
  }

  /**
   * `cert csr`: a new key (kept as partner.pending.key.pem, 0600) and a CSR to send to a CA.
   * The current key pair, if any, is untouched until `import` brings the issued certificate.
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
    mkdirSync(this.directory, { recursive: true, mode: 0o700 });
    const pendingKeyPath = join(this.directory, PENDING_KEY_FILE);
    const csrPath = join(this.directory, CSR_FILE);
    writePrivateKeyFile(
      pendingKeyPath,
      opts.passphrase ? encryptPrivateKey(privateKeyPem, opts.passphrase) : privateKeyPem,
    );
    writeFileAtomic(csrPath, csrPem, 0o644);
    return { csrPem, csrPath, pendingKeyPath };
  }

  /**
   * Imports a certificate obtained elsewhere: a PFX with its password, or a certificate with its
   * key (or with the pending key of `cert csr`). Checked before anything is written: the
   * password, that the key belongs to the certificate, that the certificate is valid now.
   */
  import(opts: ImportOptions): PartnerCredential {
    this.refuseOverwrite(opts.force);
    let privateKeyPem: string;
    let certificate: ParsedCertificate;
    let usedPending = false;
    if (opts.pfx) {
      if (opts.certificate || opts.privateKeyPem)
        throw new TypeError('import either a PFX or a certificate with its key, not both');
      const contents = importPkcs12(opts.pfx, opts.pfxPassword ?? '');
      privateKeyPem = contents.privateKeyPem;
      certificate = parseCertificate(contents.certificatePem);
    } else {
      if (!opts.certificate) throw new TypeError('import needs a PFX or a certificate');
      certificate = parseCertificate(opts.certificate);
      let keyPem = opts.privateKeyPem;
      if (keyPem === undefined) {
        const pending = join(this.directory, PENDING_KEY_FILE);
        if (!existsSync(pending))
          throw new CertificateStoreError(
            'ERR_NO_PENDING_KEY',
            `no key given and no pending key from "cert csr" in ${this.directory}`,
            pending,
          );
        keyPem = readFileSync(pending, 'utf8');
        usedPending = true;
      }
      privateKeyPem = readPrivateKey(
        keyPem,
        usedPending ? (opts.passphrase ?? opts.keyPassphrase) : opts.keyPassphrase,
      );
    }
    assertKeyMatchesCertificate(privateKeyPem, certificate);
    assertCertificateValidAt(certificate, opts.now ?? new Date());
    const credential = this.write(privateKeyPem, certificate, opts.passphrase);
    if (usedPending) {
      rmSync(join(this.directory, PENDING_KEY_FILE), { force: true });
      rmSync(join(this.directory, CSR_FILE), { force: true });
    }
    return credential;
  }

  /**
   * Reads and cross-checks the three files without looking at the clock
   * (for `cert show`, which also shows an expired certificate).
   */
  read(passphrase?: string): PartnerCredential {
    const missing = this.files().filter((f) => !existsSync(f));
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
        `the partner certificate in ${this.directory} is incomplete: ${missing.join(', ')} missing; restore it, or replace the key pair with "cert create --force"`,
        missing[0],
      );
    }

    const certificate = this.parseFile(this.paths.certificatePath);
    const cer = this.parseFile(this.paths.cerPath);
    if (!cer.der.equals(certificate.der)) {
      throw new CertificateStoreError(
        'ERR_STATE_DAMAGED',
        `${this.paths.cerPath} is not the same certificate as ${this.paths.certificatePath} (SHA-256 ${cer.thumbprints.sha256Hex} vs ${certificate.thumbprints.sha256Hex})`,
        this.paths.cerPath,
      );
    }

    this.assertPrivateKeyFileMode();
    const stored = this.readText(this.paths.privateKeyPath);
    let privateKeyPem: string;
    if (isEncryptedPrivateKey(stored)) {
      if (!passphrase)
        throw new CertificateStoreError(
          'ERR_KEY_ENCRYPTED',
          `${this.paths.privateKeyPath} is encrypted; set PARTNER_KEY_PASSPHRASE`,
          this.paths.privateKeyPath,
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
          this.paths.privateKeyPath,
        );
      }
    } else if (/-{5}BEGIN PRIVATE KEY-{5}/.test(stored)) {
      privateKeyPem = stored;
    } else {
      throw new CertificateStoreError(
        'ERR_KEY_MALFORMED',
        `${this.paths.privateKeyPath} is not a PKCS#8 PEM key (plain or encrypted)`,
        this.paths.privateKeyPath,
      );
    }
    try {
      assertKeyMatchesCertificate(privateKeyPem, certificate);
    } catch (err) {
      if (err instanceof CertificateError && err.code === 'ERR_CERT_KEY_MISMATCH') {
        throw new CertificateStoreError(
          'ERR_CERT_KEY_MISMATCH',
          `${this.paths.privateKeyPath} does not belong to the certificate ${this.paths.certificatePath}`,
          this.paths.privateKeyPath,
        );
      }
      throw this.wrap(err, this.paths.privateKeyPath);
    }
    return { ...this.paths, privateKeyPem, certificate };
  }

  /** read() plus the validity period: what must hold before any token request. */
  load(now = new Date(), passphrase?: string): PartnerCredential {
    const credential = this.read(passphrase);
    try {
      assertCertificateValidAt(credential.certificate, now);
    } catch (err) {
      if (err instanceof CertificateError) {
        const hint =
          err.code === 'ERR_CERT_EXPIRED'
            ? '; create a new one with "cert create --force" and upload the new .cer'
            : '';
        throw new CertificateStoreError(
          err.code,
          `${this.paths.certificatePath}: ${err.message}${hint}`,
          this.paths.certificatePath,
        );
      }
      throw err;
    }
    return credential;
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

  private assertPrivateKeyFileMode(): void {
    if (process.platform === 'win32') return;
    const mode = statSync(this.paths.privateKeyPath).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new CertificateStoreError(
        'ERR_KEY_PERMISSIONS',
        `${this.paths.privateKeyPath} is readable by others (mode ${mode.toString(8).padStart(4, '0')}); run chmod 600 on it`,
        this.paths.privateKeyPath,
      );
    }
  }

  private wrap(err: unknown, path: string): CertificateStoreError {
    const code = err instanceof CertificateError ? err.code : 'ERR_STATE_DAMAGED';
    return new CertificateStoreError(code, `${path}: ${(err as Error).message}`, path);
  }
}
