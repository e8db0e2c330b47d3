/**
 * The one way certflow builds a signed X.509 structure (certificate or PKCS#10 request):
 * node-forge lays out the body (TBSCertificate / CertificationRequestInfo) with its subject,
 * validity, serial and extensions, the body is DER-encoded and signed with RS256 (by a key in
 * this process or through a KeySigner), and the signed structure is assembled around it
 * (sha256WithRSAEncryption). Internal to libs/certs: the public functions are in generate.ts and
 * csr.ts.
 */
import forge from 'node-forge';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { derToPem } from './certificate';
import { CertificateError } from './errors';
import { signWithKey, verifySignature, type KeySigner } from './key-signer';

export type RsaKeySize = 2048 | 3072 | 4096;

const SHA256_WITH_RSA = '1.2.840.113549.1.1.11';
const { asn1 } = forge;

/** A body waiting for its signature: `der` is exactly the bytes the signature covers. */
export interface ToBeSigned {
  readonly der: Buffer;
  readonly body: forge.asn1.Asn1;
  readonly pemLabel: 'CERTIFICATE' | 'CERTIFICATE REQUEST';
}

export function newKeyPair(keySize: RsaKeySize): { privateKey: KeyObject; publicKey: KeyObject } {
  if (![2048, 3072, 4096].includes(keySize))
    throw new TypeError(`keySize must be 2048, 3072 or 4096, got ${keySize}`);
  return generateKeyPairSync('rsa', { modulusLength: keySize, publicExponent: 0x10001 });
}

export function pkcs8Pem(privateKey: KeyObject): string {
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** The forge form of an RSA public key, for the SubjectPublicKeyInfo and the key identifier. */
export function forgePublicKey(publicKey: KeyObject): forge.pki.PublicKey {
  if (publicKey.asymmetricKeyType !== 'rsa') {
    throw new CertificateError(
      'ERR_KEY_MALFORMED',
      `an RSA key is needed, got ${publicKey.asymmetricKeyType ?? 'an unknown key type'}`,
    );
  }
  return forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString());
}

export function subjectOf(opts: { commonName: string; organization?: string }): forge.pki.CertificateField[] {
  if (opts.commonName.trim() === '') throw new TypeError('the common name must not be empty');
  const attrs: forge.pki.CertificateField[] = [{ name: 'commonName', value: opts.commonName }];
  if (opts.organization) attrs.push({ name: 'organizationName', value: opts.organization });
  return attrs;
}

export interface ValidityOptions {
  /** Validity in days from now. */
  days?: number;
  /** Backdate notBefore slightly so that clocks a little behind still accept the certificate. */
  backdateSeconds?: number;
  now?: Date;
}

/** A certificate with its key, a random positive serial and its validity; subject and extensions to add. */
export function baseCertificate(
  publicKey: forge.pki.PublicKey,
  opts: ValidityOptions,
  defaultDays = 365,
): forge.pki.Certificate {
  const days = opts.days ?? defaultDays;
  if (!Number.isFinite(days) || days <= 0) throw new TypeError(`days must be a positive number, got ${days}`);
  const now = opts.now ?? new Date();
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // A positive serial: high bit cleared so DER does not read it as negative.
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  cert.serialNumber = serial.toString('hex');
  cert.validity.notBefore = new Date(now.getTime() - (opts.backdateSeconds ?? 60) * 1000);
  cert.validity.notAfter = new Date(now.getTime() + days * 86_400_000);
  return cert;
}

function toBeSigned(body: forge.asn1.Asn1, pemLabel: ToBeSigned['pemLabel']): ToBeSigned {
  return { der: Buffer.from(asn1.toDer(body).getBytes(), 'binary'), body, pemLabel };
}

/** Two functions of node-forge's API (lib/x509.js) that @types/node-forge does not declare. */
const pki = forge.pki as typeof forge.pki & {
  getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1;
  getCertificationRequestInfo(csr: forge.pki.CertificateSigningRequest): forge.asn1.Asn1;
};

export function certificateBody(cert: forge.pki.Certificate): ToBeSigned {
  cert.siginfo.algorithmOid = SHA256_WITH_RSA;
  return toBeSigned(pki.getTBSCertificate(cert), 'CERTIFICATE');
}

export function certificationRequestBody(csr: forge.pki.CertificateSigningRequest): ToBeSigned {
  return toBeSigned(pki.getCertificationRequestInfo(csr), 'CERTIFICATE REQUEST');
}

/** The signed structure in PEM: SEQUENCE { body, sha256WithRSAEncryption, BIT STRING signature }. */
export function assembleSigned(tbs: ToBeSigned, signature: Buffer): string {
  const signed = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs.body,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(SHA256_WITH_RSA).getBytes()),
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''),
    ]),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, `\u0000${signature.toString('binary')}`),
  ]);
  return derToPem(Buffer.from(asn1.toDer(signed).getBytes(), 'binary'), tbs.pemLabel);
}

/** Signs with a private key held in this process (synchronous). */
export function signBodyWithKey(tbs: ToBeSigned, privateKey: KeyObject): string {
  return assembleSigned(tbs, signWithKey(privateKey, 'RS256', tbs.der));
}

/**
 * Signs through a KeySigner. The signature is checked against the signer's public key before
 * anything is assembled, so a signer whose key is not the pair of its public key (a wrong token
 * object, a broken module) fails here instead of producing a certificate nobody can verify.
 */
export async function signBodyWithSigner(tbs: ToBeSigned, signer: KeySigner): Promise<string> {
  const signature = await signer.sign('RS256', tbs.der);
  if (!verifySignature(signer.publicKey, 'RS256', tbs.der, signature)) {
    throw new CertificateError(
      'ERR_CERT_KEY_MISMATCH',
      `the signature made by ${signer.description} does not verify with its public key`,
    );
  }
  return assembleSigned(tbs, signature);
}
