/** What `cert show` prints about a credential: paths, subject, validity, thumbprints; no key material. */
import { daysUntilExpiry, type ParsedCertificate } from '@certflow/certs';
import type { CertificatePaths, KeyProtection, PartnerCredential } from './certificate-store';

/** KeyProtection as printed: a token key's CKA_ID as hex. */
export type KeyProtectionSummary =
  | Extract<KeyProtection, { store: 'file' }>
  | {
      store: 'pkcs11';
      attributes: Omit<Extract<KeyProtection, { store: 'pkcs11' }>['attributes'], 'id'> & { id: string };
    };

/** A summary safe to print: no key material. */
export interface CertificateSummary extends Omit<CertificatePaths, 'directory'> {
  certificateDirectory: string;
  /** The generation in use (undefined: a directory of the first layout). */
  generation: string | undefined;
  keyProtection: KeyProtectionSummary;
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
  daysUntilExpiry: number;
  status: 'valid' | 'expired' | 'not-yet-valid';
  thumbprints: ParsedCertificate['thumbprints'];
}

export function summarize(credential: PartnerCredential, now = new Date()): CertificateSummary {
  const { certificate } = credential;
  const status =
    now < certificate.notBefore ? 'not-yet-valid' : now > certificate.notAfter ? 'expired' : 'valid';
  return {
    certificateDirectory: credential.directory,
    generation: credential.generation,
    ...(credential.privateKeyPath !== undefined ? { privateKeyPath: credential.privateKeyPath } : {}),
    ...(credential.keyUri !== undefined ? { keyUri: credential.keyUri } : {}),
    keyProtection:
      credential.keyProtection.store === 'pkcs11'
        ? {
            store: 'pkcs11',
            attributes: {
              ...credential.keyProtection.attributes,
              id: credential.keyProtection.attributes.id.toString('hex'),
            },
          }
        : credential.keyProtection,
    certificatePath: credential.certificatePath,
    cerPath: credential.cerPath,
    subject: certificate.subject,
    issuer: certificate.issuer,
    serialNumber: certificate.serialNumber,
    notBefore: certificate.notBefore.toISOString(),
    notAfter: certificate.notAfter.toISOString(),
    daysUntilExpiry: daysUntilExpiry(certificate, now),
    status,
    thumbprints: certificate.thumbprints,
  };
}
