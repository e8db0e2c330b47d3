/**
 * What reading PARTNER_CERT_DIR yields (a PartnerCredential), what a generation holds as its key,
 * and the errors the certificate store fails with. Shared by certificate-store.ts and the files
 * it reads and writes through; the public names are exported from there.
 */
import type { CertificateErrorCode, KeyEncryption, KeySigner, ParsedCertificate } from '@certflow/certs';
import type { Pkcs11Error, Pkcs11KeyAttributes } from '@certflow/pkcs11';
import { LayoutError } from './generations';

export type CertificateStoreErrorCode =
  | CertificateErrorCode
  | 'ERR_CERT_NOT_FOUND'
  | 'ERR_CERT_INCOMPLETE'
  | 'ERR_CERT_EXISTS'
  | 'ERR_KEY_PERMISSIONS'
  | 'ERR_KEY_IN_TOKEN'
  | 'ERR_ROTATION_UNDER_WAY'
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

/** Layout errors (a damaged `current`) are state errors naming the path. */
export function guardLayout<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof LayoutError)
      throw new CertificateStoreError('ERR_STATE_DAMAGED', err.message, err.path);
    throw err;
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
