/**
 * Key pairs and X.509 certificates: the partner's self-signed client certificate, the local
 * development CA and the certificates it issues. Keys are made by node:crypto; every certificate
 * is laid out by node-forge and signed through x509-builder.ts, either with a key held in this
 * process or through a KeySigner (a key in a PKCS#11 token never leaves it).
 *
 * @example
 *   const { privateKeyPem, certificatePem } = createSelfSignedCertificate({ commonName: 'contoso-partner' });
 *   const pem = await createSelfSignedCertificateWithSigner(tokenSigner, { commonName: 'contoso-partner' });
 */
import forge from 'node-forge';
import type { KeyObject } from 'node:crypto';
import type { KeySigner } from './key-signer';
import { privateKeyObject } from './private-key';
import {
  baseCertificate,
  certificateBody,
  forgePublicKey,
  newKeyPair,
  pkcs8Pem,
  signBodyWithKey,
  signBodyWithSigner,
  subjectOf,
  type RsaKeySize,
  type ToBeSigned,
  type ValidityOptions,
} from './x509-builder';

export type { RsaKeySize } from './x509-builder';

export interface CertificateAndKey {
  /** PKCS#8 PEM, unencrypted. */
  privateKeyPem: string;
  certificatePem: string;
}

export interface SelfSignedOptions extends ValidityOptions {
  commonName: string;
  organization?: string;
  /** Validity in days from now; Entra ID accepts at most a few years, one year is customary. */
  days?: number;
  keySize?: RsaKeySize;
}

export interface IssuedCertificateOptions extends SelfSignedOptions {
  dnsNames?: string[];
  ipAddresses?: string[];
}

/** The body of a self-signed client certificate for `publicKey`. */
function selfSignedBody(publicKey: KeyObject, opts: Omit<SelfSignedOptions, 'keySize'>): ToBeSigned {
  const subject = subjectOf(opts);
  const cert = baseCertificate(forgePublicKey(publicKey), opts);
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', clientAuth: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  return certificateBody(cert);
}

/** A self-signed client certificate with a new key: what a partner makes in step 2 of the flow. */
export function createSelfSignedCertificate(opts: SelfSignedOptions): CertificateAndKey {
  subjectOf(opts); // a bad name is refused before a key is made
  const keys = newKeyPair(opts.keySize ?? 2048);
  return {
    certificatePem: signBodyWithKey(selfSignedBody(keys.publicKey, opts), keys.privateKey),
    privateKeyPem: pkcs8Pem(keys.privateKey),
  };
}

/**
 * The same certificate for the signer's key, signed through the signer (a key in a PKCS#11
 * token never leaves it). The signature is checked against `signer.publicKey` before the
 * certificate is returned.
 */
export async function createSelfSignedCertificateWithSigner(
  signer: KeySigner,
  opts: Omit<SelfSignedOptions, 'keySize'>,
): Promise<string> {
  return signBodyWithSigner(selfSignedBody(signer.publicKey, opts), signer);
}

/** A certificate authority that can sign other certificates (the local development CA). */
export function createCertificateAuthority(opts: SelfSignedOptions): CertificateAndKey {
  const subject = subjectOf(opts);
  const keys = newKeyPair(opts.keySize ?? 2048);
  const cert = baseCertificate(forgePublicKey(keys.publicKey), opts, 3650);
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  return {
    certificatePem: signBodyWithKey(certificateBody(cert), keys.privateKey),
    privateKeyPem: pkcs8Pem(keys.privateKey),
  };
}

/** A certificate signed by `issuer`: a TLS server certificate when DNS names or IPs are given, else a client one. */
export function issueCertificate(
  issuer: CertificateAndKey,
  opts: IssuedCertificateOptions,
): CertificateAndKey {
  const issuerCert = forge.pki.certificateFromPem(issuer.certificatePem);
  const issuerKey = privateKeyObject(issuer.privateKeyPem);
  const subject = subjectOf(opts);
  const keys = newKeyPair(opts.keySize ?? 2048);
  const cert = baseCertificate(forgePublicKey(keys.publicKey), opts);
  cert.setSubject(subject);
  cert.setIssuer(issuerCert.subject.attributes);
  const altNames = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(opts.ipAddresses ?? []).map((ip) => ({ type: 7, ip })),
  ];
  const isServer = altNames.length > 0;
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: isServer, clientAuth: !isServer },
    ...(isServer ? [{ name: 'subjectAltName', altNames }] : []),
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: issuerCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  return {
    certificatePem: signBodyWithKey(certificateBody(cert), issuerKey),
    privateKeyPem: pkcs8Pem(keys.privateKey),
  };
}
