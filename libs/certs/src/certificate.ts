/**
 * Certificates as Entra ID sees them: a DER blob identified by its SHA-1 (`x5t`) and
 * SHA-256 (`x5t#S256`) thumbprints.
 *
 * @example
 *   const cert = parseCertificate(readFileSync('partner.cer'));
 *   cert.thumbprints.sha256Base64Url; // the x5t#S256 MSAL puts in the assertion header
 */
import { X509Certificate, createHash, createPrivateKey, createPublicKey, KeyObject } from 'node:crypto';
import { CertificateError } from './errors';

export interface Thumbprints {
  /** Upper-case hex, as the Azure portal shows it and as `customKeyIdentifier` holds it. */
  sha1Hex: string;
  sha256Hex: string;
  /** base64url of the SHA-1 digest: the JWT `x5t` header. */
  sha1Base64Url: string;
  /** base64url of the SHA-256 digest: the JWT `x5t#S256` header. */
  sha256Base64Url: string;
}

export interface ParsedCertificate {
  der: Buffer;
  pem: string;
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  thumbprints: Thumbprints;
  publicKey: KeyObject;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;
const PEM_PRIVATE_KEY = /-----BEGIN ((RSA|EC|ENCRYPTED) )?PRIVATE KEY-----/;

export function thumbprintsOf(der: Uint8Array): Thumbprints {
  const sha1 = createHash('sha1').update(der).digest();
  const sha256 = createHash('sha256').update(der).digest();
  return {
    sha1Hex: sha1.toString('hex').toUpperCase(),
    sha256Hex: sha256.toString('hex').toUpperCase(),
    sha1Base64Url: sha1.toString('base64url'),
    sha256Base64Url: sha256.toString('base64url'),
  };
}

/** PEM with 64-character lines; a certificate unless another label (e.g. `CERTIFICATE REQUEST`) is given. */
export function derToPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64.replace(/\n$/, '')}\n-----END ${label}-----\n`;
}

export function pemToDer(pem: string): Buffer {
  const match = PEM_CERT.exec(pem);
  if (!match) throw new CertificateError('ERR_CERT_MALFORMED', 'no PEM certificate block found');
  const body = match[0].replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  return Buffer.from(body, 'base64');
}

/**
 * Reads a public certificate given as DER (`.cer`), PEM (`.crt`/`.pem`) or base64 DER (Graph's
 * `keyCredential.key`). Anything holding a private key is refused: only the public half may travel.
 */
export function parseCertificate(input: Uint8Array | string): ParsedCertificate {
  const buf = typeof input === 'string' ? Buffer.from(input, 'utf8') : Buffer.from(input);
  const text = buf.toString('latin1');
  if (PEM_PRIVATE_KEY.test(text)) {
    throw new CertificateError(
      'ERR_CERT_CONTAINS_PRIVATE_KEY',
      'the file contains a private key; send only the public certificate (.cer)',
    );
  }
  let der: Buffer;
  if (text.includes('-----BEGIN CERTIFICATE-----')) der = pemToDer(text);
  else if (buf.length > 0 && buf[0] === 0x30) der = buf;
  else if (/^[A-Za-z0-9+/=\s]+$/.test(text) && text.trim().length > 0) der = Buffer.from(text, 'base64');
  else throw new CertificateError('ERR_CERT_MALFORMED', 'not a DER, PEM or base64 X.509 certificate');

  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(der);
  } catch (err) {
    throw new CertificateError(
      'ERR_CERT_MALFORMED',
      `not a valid X.509 certificate: ${(err as Error).message}`,
    );
  }
  const canonicalDer = x509.raw;
  return {
    der: canonicalDer,
    pem: derToPem(canonicalDer),
    subject: x509.subject,
    issuer: x509.issuer,
    serialNumber: x509.serialNumber,
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
    isCa: x509.ca,
    thumbprints: thumbprintsOf(canonicalDer),
    publicKey: x509.publicKey,
  };
}

/** Throws unless `now` lies inside the certificate's validity period. */
export function assertCertificateValidAt(cert: ParsedCertificate, now = new Date()): void {
  if (now < cert.notBefore) {
    throw new CertificateError(
      'ERR_CERT_NOT_YET_VALID',
      `certificate is not valid before ${cert.notBefore.toISOString()}`,
    );
  }
  if (now > cert.notAfter) {
    throw new CertificateError('ERR_CERT_EXPIRED', `certificate expired at ${cert.notAfter.toISOString()}`);
  }
}

/** Throws unless the private key is the other half of the certificate's public key. */
export function assertKeyMatchesCertificate(
  privateKeyPem: string,
  cert: ParsedCertificate,
  passphrase?: string,
): void {
  let key: KeyObject;
  try {
    key = createPrivateKey(passphrase === undefined ? privateKeyPem : { key: privateKeyPem, passphrase });
  } catch (err) {
    throw new CertificateError('ERR_KEY_MALFORMED', `cannot read the private key: ${(err as Error).message}`);
  }
  const fromKey = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const fromCert = cert.publicKey.export({ type: 'spki', format: 'der' });
  if (!fromKey.equals(fromCert)) {
    throw new CertificateError('ERR_CERT_KEY_MISMATCH', 'the private key does not belong to the certificate');
  }
}

export function daysUntilExpiry(cert: ParsedCertificate, now = new Date()): number {
  return Math.floor((cert.notAfter.getTime() - now.getTime()) / 86_400_000);
}
