/** Failures of certificate handling, each with a stable `code` that callers branch on. */
export type CertificateErrorCode =
  | 'ERR_CERT_MALFORMED'
  | 'ERR_CERT_CONTAINS_PRIVATE_KEY'
  | 'ERR_CERT_KEY_MISMATCH'
  | 'ERR_CERT_EXPIRED'
  | 'ERR_CERT_NOT_YET_VALID'
  | 'ERR_KEY_MALFORMED'
  | 'ERR_KEY_ENCRYPTED'
  | 'ERR_WRONG_PASSWORD'
  | 'ERR_PKCS12_MALFORMED'
  | 'ERR_STATE_DAMAGED';

export class CertificateError extends Error {
  override readonly name = 'CertificateError';
  constructor(
    readonly code: CertificateErrorCode,
    message: string,
  ) {
    super(message);
  }
}
