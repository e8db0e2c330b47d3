/**
 * PKCS#10 certificate signing requests, for a partner whose certificate comes from a CA: made
 * with a key in this process (`createCsr`) or through a KeySigner (`createCsrWithSigner`, the
 * key stays in its token), both through x509-builder.ts; and `signCsr`, what the CA does.
 *
 * @example
 *   const { csrPem, privateKeyPem } = createCsr({ commonName: 'contoso-partner', organization: 'Contoso' });
 */
import forge from 'node-forge';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { CertificateError } from './errors';
import type { KeySigner } from './key-signer';
import { privateKeyObject } from './private-key';
import {
  baseCertificate,
  certificateBody,
  certificationRequestBody,
  forgePublicKey,
  newKeyPair,
  pkcs8Pem,
  signBodyWithKey,
  signBodyWithSigner,
  subjectOf,
  type RsaKeySize,
  type ToBeSigned,
} from './x509-builder';

export interface CsrSubject {
  commonName: string;
  organization?: string;
}

export interface CsrOptions extends CsrSubject {
  keySize?: RsaKeySize;
  /** Sign the CSR with this key (PKCS#8/PKCS#1 PEM) instead of a new one. */
  privateKeyPem?: string;
}

export interface CsrAndKey {
  csrPem: string;
  /** PKCS#8 PEM, unencrypted: keep it until the CA returns the certificate. */
  privateKeyPem: string;
}

/** The CertificationRequestInfo of a client certificate request for `publicKey`. */
function csrBody(publicKey: KeyObject, opts: CsrSubject): ToBeSigned {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forgePublicKey(publicKey);
  csr.setSubject(subjectOf(opts));
  csr.setAttributes([
    {
      name: 'extensionRequest',
      extensions: [
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', clientAuth: true },
      ],
    },
  ]);
  return certificationRequestBody(csr);
}

/** A PKCS#10 certificate signing request (SHA-256) for a client certificate, with a new key or a given one. */
export function createCsr(opts: CsrOptions): CsrAndKey {
  subjectOf(opts); // a bad name is refused before a key is made
  const privateKey = opts.privateKeyPem
    ? privateKeyObject(opts.privateKeyPem)
    : newKeyPair(opts.keySize ?? 2048).privateKey;
  return {
    csrPem: signBodyWithKey(csrBody(createPublicKey(privateKey), opts), privateKey),
    privateKeyPem: pkcs8Pem(privateKey),
  };
}

/** The same request for the signer's key, signed through the signer (checked against its public key). */
export async function createCsrWithSigner(signer: KeySigner, opts: CsrSubject): Promise<string> {
  return signBodyWithSigner(csrBody(signer.publicKey, opts), signer);
}

/** node-forge throws, rather than answering false, on some wrong signatures ("Encryption block is invalid"). */
function signatureVerifies(csr: forge.pki.CertificateSigningRequest): boolean {
  try {
    return csr.verify();
  } catch {
    return false;
  }
}

/** Subject CN and whether the CSR's signature verifies (for tests and `cert csr` output). */
export function inspectCsr(csrPem: string): { commonName: string | undefined; verified: boolean } {
  const csr = forge.pki.certificationRequestFromPem(csrPem);
  const cn = csr.subject.getField('CN') as { value?: string } | null;
  return { commonName: cn?.value, verified: signatureVerifies(csr) };
}

/**
 * What a CA does with a CSR: a client certificate for the CSR's key and subject, signed by
 * `issuer` (e.g. the development CA, or a test CA). The CSR's signature is checked first.
 */
export function signCsr(
  issuer: { certificatePem: string; privateKeyPem: string },
  csrPem: string,
  opts: { days?: number; now?: Date } = {},
): string {
  const csr = forge.pki.certificationRequestFromPem(csrPem);
  if (!signatureVerifies(csr))
    throw new CertificateError('ERR_CERT_MALFORMED', 'the CSR signature does not verify');
  const issuerCert = forge.pki.certificateFromPem(issuer.certificatePem);
  const cert = baseCertificate(csr.publicKey!, opts);
  cert.setSubject(csr.subject.attributes);
  cert.setIssuer(issuerCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', clientAuth: true },
    { name: 'authorityKeyIdentifier', keyIdentifier: issuerCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  return signBodyWithKey(certificateBody(cert), privateKeyObject(issuer.privateKeyPem));
}
