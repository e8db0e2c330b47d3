/**
 * The partners' public certificates, only from the `.cer` files they sent (`certificate.cerFile`
 * in the topology): read and checked before anything is contacted. No key is ever generated
 * here. A file must hold exactly one certificate and nothing else: DER with bytes after the
 * certificate, or PEM with a second block or a block of another kind (a private key), is refused.
 */
import { readFileSync } from 'node:fs';
import { CertificateError, parseCertificate, pemToDer, type ParsedCertificate } from '@certflow/certs';
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
  const refuse = (problem: string) => new CertificateFileError(`${where}: ${problem}`);
  const encoded = soleCertificate(bytes, refuse);
  let certificate: ParsedCertificate;
  try {
    certificate = parseCertificate(encoded);
  } catch (err) {
    if (err instanceof CertificateError && err.code === 'ERR_CERT_CONTAINS_PRIVATE_KEY')
      throw refuse('holds a private key; only the public certificate the partner sent is used');
    throw refuse('not an X.509 certificate (DER .cer or PEM)');
  }
  // X.509 parsing stops at the end of the certificate: whatever follows it would go unseen.
  const extra = derLength(encoded) - certificate.der.length;
  if (extra !== 0)
    throw refuse(
      `${extra} byte(s) follow the certificate (a private key or a second certificate?); a .cer holds exactly one certificate`,
    );
  if (certificate.notAfter.getTime() <= now.getTime())
    throw refuse(`expired on ${certificate.notAfter.toISOString()}; ask the partner for a new one`);
  return {
    file,
    der: certificate.der,
    sha1: certificate.thumbprints.sha1Hex,
    subject: certificate.subject.replace(/\n/g, ', '),
    validTo: certificate.notAfter,
  };
}

const PEM_BLOCK = /-----BEGIN ([^-\r\n]*)-----[\s\S]*?-----END \1-----/g;

/**
 * The certificate's own encoding: the DER bytes, or the one PEM block. A PEM file may hold
 * nothing but that block (and whitespace): no second block, no other kind of block, no text.
 */
function soleCertificate(bytes: Buffer, refuse: (problem: string) => Error): Buffer | string {
  const text = bytes.toString('latin1');
  if (!text.includes('-----BEGIN')) {
    // DER starts with a SEQUENCE; base64 without PEM armour is not a .cer.
    if (bytes[0] !== 0x30) throw refuse('not an X.509 certificate (DER .cer or PEM)');
    return bytes;
  }
  const blocks = [...text.matchAll(PEM_BLOCK)];
  const labels = blocks.map((b) => b[1]!);
  if (labels.some((label) => /PRIVATE KEY/.test(label)))
    throw refuse('holds a private key; only the public certificate the partner sent is used');
  if (blocks.length !== 1)
    throw refuse(
      `holds ${blocks.length} PEM blocks (${labels.join(', ') || 'none complete'}); a .cer holds exactly one certificate`,
    );
  if (labels[0] !== 'CERTIFICATE') throw refuse(`holds a PEM "${labels[0]}" block, not a CERTIFICATE`);
  const outside = text.slice(0, blocks[0]!.index) + text.slice(blocks[0]!.index! + blocks[0]![0].length);
  if (outside.trim() !== '')
    throw refuse('holds text or data outside its PEM block; a .cer holds exactly one certificate');
  return blocks[0]![0];
}

/** How many DER bytes an encoding carries: the file itself, or the PEM block's base64 body. */
function derLength(encoded: Buffer | string): number {
  return (typeof encoded === 'string' ? pemToDer(encoded) : encoded).length;
}
