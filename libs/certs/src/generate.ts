/**
 * Key pairs and X.509 certificates made with node-forge (RSA key generation itself is
 * delegated by forge to Node's native crypto, so a 2048-bit key takes milliseconds).
 *
 * @example
 *   const { privateKeyPem, certificatePem } = createSelfSignedCertificate({ commonName: 'contoso-partner' });
 */
import forge from 'node-forge';
import { randomBytes } from 'node:crypto';

export type RsaKeySize = 2048 | 3072 | 4096;

export interface CertificateAndKey {
  /** PKCS#8 PEM, unencrypted. */
  privateKeyPem: string;
  certificatePem: string;
}

export interface SelfSignedOptions {
  commonName: string;
  organization?: string;
  /** Validity in days from now; Entra ID accepts at most a few years, one year is customary. */
  days?: number;
  keySize?: RsaKeySize;
  /** Backdate notBefore slightly so that clocks a little behind still accept the certificate. */
  backdateSeconds?: number;
  now?: Date;
}

export interface IssuedCertificateOptions extends SelfSignedOptions {
  dnsNames?: string[];
  ipAddresses?: string[];
}

function newKeyPair(keySize: RsaKeySize): forge.pki.rsa.KeyPair {
  if (![2048, 3072, 4096].includes(keySize))
    throw new TypeError(`keySize must be 2048, 3072 or 4096, got ${keySize}`);
  return forge.pki.rsa.generateKeyPair({ bits: keySize, e: 0x10001 });
}

function baseCertificate(publicKey: forge.pki.PublicKey, opts: SelfSignedOptions): forge.pki.Certificate {
  const days = opts.days ?? 365;
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

function subjectOf(opts: SelfSignedOptions): forge.pki.CertificateField[] {
  const attrs: forge.pki.CertificateField[] = [{ name: 'commonName', value: opts.commonName }];
  if (opts.organization) attrs.push({ name: 'organizationName', value: opts.organization });
  return attrs;
}

function toPem(cert: forge.pki.Certificate, privateKey: forge.pki.PrivateKey): CertificateAndKey {
  const pkcs8 = forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(privateKey));
  return {
    certificatePem: forge.pki.certificateToPem(cert),
    privateKeyPem: forge.pki.privateKeyInfoToPem(pkcs8),
  };
}

/** A self-signed client certificate: what a partner makes in step 2 of the flow. */
export function createSelfSignedCertificate(opts: SelfSignedOptions): CertificateAndKey {
  const keys = newKeyPair(opts.keySize ?? 2048);
  const cert = baseCertificate(keys.publicKey, opts);
  cert.setSubject(subjectOf(opts));
  cert.setIssuer(subjectOf(opts));
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', clientAuth: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return toPem(cert, keys.privateKey);
}

/** A certificate authority that can sign other certificates (the local development CA). */
export function createCertificateAuthority(opts: SelfSignedOptions): CertificateAndKey {
  const keys = newKeyPair(opts.keySize ?? 2048);
  const cert = baseCertificate(keys.publicKey, { days: 3650, ...opts });
  cert.setSubject(subjectOf(opts));
  cert.setIssuer(subjectOf(opts));
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return toPem(cert, keys.privateKey);
}

/** A certificate signed by `issuer`: a TLS server certificate when DNS names or IPs are given, else a client one. */
export function issueCertificate(
  issuer: CertificateAndKey,
  opts: IssuedCertificateOptions,
): CertificateAndKey {
  const issuerCert = forge.pki.certificateFromPem(issuer.certificatePem);
  const issuerKey = forge.pki.privateKeyFromPem(issuer.privateKeyPem);
  const keys = newKeyPair(opts.keySize ?? 2048);
  const cert = baseCertificate(keys.publicKey, opts);
  cert.setSubject(subjectOf(opts));
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
  cert.sign(issuerKey, forge.md.sha256.create());
  return toPem(cert, keys.privateKey);
}
