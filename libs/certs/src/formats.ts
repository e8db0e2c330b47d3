/**
 * Certificate and key formats a partner meets when its certificate does not come from
 * `cert create`: CSRs for a CA-issued certificate, PFX/PKCS#12 bundles (with a password),
 * PEM certificates, PKCS#1/PKCS#8/encrypted PKCS#8 keys, and the `keyCredential` JSON that
 * Microsoft Graph expects on an application.
 *
 * Every key handed back is unencrypted PKCS#8 PEM (what MSAL needs; it has no passphrase
 * option); `encryptPrivateKey` makes the encrypted PKCS#8 form for storage at rest.
 *
 * @example
 *   const { privateKeyPem, certificatePem } = importPkcs12(readFileSync('partner.pfx'), 'secret');
 */
import forge from 'node-forge';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { parseCertificate, type ParsedCertificate } from './certificate';
import { CertificateError } from './errors';
import type { RsaKeySize } from './generate';

export interface CsrOptions {
  commonName: string;
  organization?: string;
  keySize?: RsaKeySize;
  /** Sign the CSR with this key (PKCS#8/PKCS#1 PEM) instead of a new one. */
  privateKeyPem?: string;
}

export interface CsrAndKey {
  csrPem: string;
  /** PKCS#8 PEM, unencrypted: keep it until the CA returns the certificate. */
  privateKeyPem: string;
}

/** A PKCS#10 certificate signing request (SHA-256) for a client certificate. */
export function createCsr(opts: CsrOptions): CsrAndKey {
  if (opts.commonName.trim() === '') throw new TypeError('the common name must not be empty');
  let privateKey: forge.pki.rsa.PrivateKey;
  let publicKey: forge.pki.rsa.PublicKey;
  if (opts.privateKeyPem) {
    privateKey = forge.pki.privateKeyFromPem(readPrivateKey(opts.privateKeyPem)) as forge.pki.rsa.PrivateKey;
    publicKey = forge.pki.setRsaPublicKey(privateKey.n, privateKey.e);
  } else {
    const bits = opts.keySize ?? 2048;
    if (![2048, 3072, 4096].includes(bits))
      throw new TypeError(`keySize must be 2048, 3072 or 4096, got ${bits}`);
    ({ privateKey, publicKey } = forge.pki.rsa.generateKeyPair({ bits, e: 0x10001 }));
  }
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = publicKey;
  const subject: forge.pki.CertificateField[] = [{ name: 'commonName', value: opts.commonName }];
  if (opts.organization) subject.push({ name: 'organizationName', value: opts.organization });
  csr.setSubject(subject);
  csr.setAttributes([
    {
      name: 'extensionRequest',
      extensions: [
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', clientAuth: true },
      ],
    },
  ]);
  csr.sign(privateKey, forge.md.sha256.create());
  const pkcs8 = forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(privateKey));
  return {
    csrPem: forge.pki.certificationRequestToPem(csr).replace(/\r\n/g, '\n'),
    privateKeyPem: readPrivateKey(forge.pki.privateKeyInfoToPem(pkcs8)),
  };
}

/** Subject CN and whether the CSR's signature verifies (for tests and `cert csr` output). */
export function inspectCsr(csrPem: string): { commonName: string | undefined; verified: boolean } {
  const csr = forge.pki.certificationRequestFromPem(csrPem);
  const cn = csr.subject.getField('CN') as { value?: string } | null;
  return { commonName: cn?.value, verified: csr.verify() };
}

function keyObject(pem: string, passphrase?: string): KeyObject {
  const encrypted = /-{5}BEGIN ENCRYPTED PRIVATE KEY-{5}|Proc-Type: 4,ENCRYPTED/.test(pem);
  if (encrypted && (passphrase === undefined || passphrase === '')) {
    throw new CertificateError('ERR_KEY_ENCRYPTED', 'the private key is encrypted; a passphrase is needed');
  }
  if (!/-{5}BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-{5}/.test(pem)) {
    throw new CertificateError(
      'ERR_KEY_MALFORMED',
      'no PEM private key (PKCS#1, PKCS#8 or encrypted PKCS#8) found',
    );
  }
  try {
    return createPrivateKey(
      encrypted ? { key: pem, format: 'pem', passphrase: passphrase! } : { key: pem, format: 'pem' },
    );
  } catch (err) {
    if (encrypted)
      throw new CertificateError('ERR_WRONG_PASSWORD', 'cannot decrypt the private key: wrong passphrase?');
    throw new CertificateError('ERR_KEY_MALFORMED', `cannot read the private key: ${(err as Error).message}`);
  }
}

/**
 * Any PEM private key (PKCS#1 `RSA PRIVATE KEY`, PKCS#8, encrypted PKCS#8 with `passphrase`)
 * as unencrypted PKCS#8 PEM.
 */
export function readPrivateKey(pem: string, passphrase?: string): string {
  return keyObject(pem, passphrase).export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** Encrypted PKCS#8 PEM (AES-256-CBC, PBKDF2) for storing a key at rest. */
export function encryptPrivateKey(pem: string, passphrase: string, currentPassphrase?: string): string {
  if (passphrase.length < 8) throw new TypeError('the passphrase must have at least 8 characters');
  return keyObject(pem, currentPassphrase)
    .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase })
    .toString();
}

export function isEncryptedPrivateKey(pem: string): boolean {
  return /-{5}BEGIN ENCRYPTED PRIVATE KEY-{5}|Proc-Type: 4,ENCRYPTED/.test(pem);
}

export interface Pkcs12Contents {
  /** Unencrypted PKCS#8 PEM. */
  privateKeyPem: string;
  /** The certificate that belongs to the key (PEM). */
  certificatePem: string;
  /** Other certificates in the bundle (intermediates), PEM. */
  chainPems: string[];
}

/**
 * Reads a PFX/PKCS#12 bundle: the one private key and the certificate whose public key matches
 * it (any other certificates are returned as the chain). A wrong password is ERR_WRONG_PASSWORD.
 */
export function importPkcs12(data: Uint8Array, password: string): Pkcs12Contents {
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    const asn1 = forge.asn1.fromDer(forge.util.createBuffer(Buffer.from(data).toString('binary')));
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, false, password);
  } catch (err) {
    const message = (err as Error).message ?? String(err);
    if (/MAC could not be verified|Invalid password|decrypt/i.test(message)) {
      throw new CertificateError('ERR_WRONG_PASSWORD', 'cannot open the PKCS#12 file: wrong password');
    }
    throw new CertificateError('ERR_PKCS12_MALFORMED', `not a valid PKCS#12 (PFX) file: ${message}`);
  }
  const keyBags = [
    ...(p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag! })[forge.pki.oids.pkcs8ShroudedKeyBag!] ??
      []),
    ...(p12.getBags({ bagType: forge.pki.oids.keyBag! })[forge.pki.oids.keyBag!] ?? []),
  ];
  const certBags = p12.getBags({ bagType: forge.pki.oids.certBag! })[forge.pki.oids.certBag!] ?? [];
  const keys = keyBags.filter((b) => b.key);
  if (keys.length !== 1) {
    throw new CertificateError(
      'ERR_PKCS12_MALFORMED',
      `the PKCS#12 file must hold exactly one private key, found ${keys.length}`,
    );
  }
  const key = keys[0]!.key as forge.pki.rsa.PrivateKey;
  const privateKeyPem = readPrivateKey(
    forge.pki.privateKeyInfoToPem(forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(key))),
  );
  const certPems = certBags.filter((b) => b.cert).map((b) => forge.pki.certificateToPem(b.cert!));
  const modulus = key.n.toString(16);
  const own = certBags.findIndex(
    (b) => (b.cert?.publicKey as forge.pki.rsa.PublicKey | undefined)?.n.toString(16) === modulus,
  );
  if (own < 0) {
    throw new CertificateError(
      'ERR_CERT_KEY_MISMATCH',
      'the PKCS#12 file holds no certificate for its private key',
    );
  }
  return {
    privateKeyPem,
    certificatePem: parseCertificate(certPems[own]!).pem,
    chainPems: certPems.filter((_, i) => i !== own),
  };
}

export interface Pkcs12ExportOptions {
  privateKeyPem: string;
  certificatePem: string;
  chainPems?: string[];
  password: string;
  friendlyName?: string;
}

/** A PFX/PKCS#12 bundle (AES-256, SHA-256 MAC) that Windows, OpenSSL and Azure Key Vault read. */
export function exportPkcs12(opts: Pkcs12ExportOptions): Buffer {
  if (opts.password.length === 0) throw new TypeError('a PKCS#12 export needs a password');
  const key = forge.pki.privateKeyFromPem(readPrivateKey(opts.privateKeyPem));
  const certs = [opts.certificatePem, ...(opts.chainPems ?? [])].map((p) => forge.pki.certificateFromPem(p));
  const asn1 = forge.pkcs12.toPkcs12Asn1(key, certs, opts.password, {
    algorithm: 'aes256',
    ...(opts.friendlyName ? { friendlyName: opts.friendlyName } : {}),
  });
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
}

/** The keyCredential object Microsoft Graph takes in `application.keyCredentials` and `addKey`. */
export interface KeyCredentialJson {
  type: 'AsymmetricX509Cert';
  usage: 'Verify';
  /** base64 DER of the public certificate. */
  key: string;
  displayName: string;
  /** Upper-case SHA-1 hex thumbprint (what the portal shows). */
  customKeyIdentifier?: string;
  startDateTime: string;
  endDateTime: string;
}

export function keyCredentialFor(
  certificate: ParsedCertificate | string | Uint8Array,
  opts: { displayName?: string; customKeyIdentifier?: boolean } = {},
): KeyCredentialJson {
  const cert =
    typeof certificate === 'object' && 'thumbprints' in certificate
      ? certificate
      : parseCertificate(certificate);
  return {
    type: 'AsymmetricX509Cert',
    usage: 'Verify',
    key: cert.der.toString('base64'),
    displayName: opts.displayName ?? cert.subject.replace(/\n/g, ', '),
    ...(opts.customKeyIdentifier === false ? {} : { customKeyIdentifier: cert.thumbprints.sha1Hex }),
    startDateTime: cert.notBefore.toISOString(),
    endDateTime: cert.notAfter.toISOString(),
  };
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
  if (!csr.verify()) throw new CertificateError('ERR_CERT_MALFORMED', 'the CSR signature does not verify');
  const issuerCert = forge.pki.certificateFromPem(issuer.certificatePem);
  const now = opts.now ?? new Date();
  const cert = forge.pki.createCertificate();
  cert.publicKey = csr.publicKey!;
  cert.serialNumber = `0${forge.util.bytesToHex(forge.random.getBytesSync(15))}`;
  cert.validity.notBefore = new Date(now.getTime() - 60_000);
  cert.validity.notAfter = new Date(now.getTime() + (opts.days ?? 365) * 86_400_000);
  cert.setSubject(csr.subject.attributes);
  cert.setIssuer(issuerCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', clientAuth: true },
    { name: 'authorityKeyIdentifier', keyIdentifier: issuerCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(readPrivateKey(issuer.privateKeyPem)), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n');
}
