/**
 * The partners' public certificates, only from the `.cer` files they sent (`certificate.cerFile`
 * in the topology): read and checked before anything is contacted. No key is ever generated
 * here, and a file holding a private key is refused.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TopologyPartner } from '@certflow/topology';

export interface PartnerCertificate {
  file: string;
  /** DER, as registered in keyCredentials. */
  der: Buffer;
  sha1: string;
  subject: string;
  validTo: Date;
}

/** A `.cer` that cannot be used: exit code 2, nothing contacted. */
export class CertificateFileError extends Error {
  override readonly name = 'CertificateFileError';
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/;

/** partner name → its certificate, for every partner whose topology entry names a cerFile. */
export function readPartnerCertificates(
  partners: TopologyPartner[],
  now = new Date(),
): Map<string, PartnerCertificate> {
  const found = new Map<string, PartnerCertificate>();
  for (const partner of partners) {
    const file = partner.certificate.cerFile;
    if (file !== undefined) found.set(partner.name, readCertificate(partner.name, file, now));
  }
  return found;
}

function readCertificate(partner: string, file: string, now: Date): PartnerCertificate {
  const where = `partner ${partner}: certificate.cerFile ${file}`;
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new CertificateFileError(
      `${where}: cannot read it (${(err as NodeJS.ErrnoException).code ?? err})`,
    );
  }
  const text = bytes.toString('latin1');
  if (/PRIVATE KEY-----/.test(text))
    throw new CertificateFileError(
      `${where}: holds a private key; only the public certificate the partner sent is used`,
    );
  const pem = PEM_CERTIFICATE.exec(text);
  const der = pem ? Buffer.from(pem[1]!.replace(/\s+/g, ''), 'base64') : bytes;
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(der);
  } catch {
    throw new CertificateFileError(`${where}: not an X.509 certificate (DER .cer or PEM)`);
  }
  const validTo = new Date(certificate.validTo);
  if (validTo.getTime() <= now.getTime())
    throw new CertificateFileError(
      `${where}: expired on ${validTo.toISOString()}; ask the partner for a new one`,
    );
  return {
    file,
    der,
    sha1: certificate.fingerprint.replace(/:/g, '').toUpperCase(),
    subject: certificate.subject.replace(/\n/g, ', '),
    validTo,
  };
}
