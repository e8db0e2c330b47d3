/**
 * Certificate formats a partner meets when its certificate does not come from `cert create`:
 * PFX/PKCS#12 bundles (with a password) and the `keyCredential` JSON that Microsoft Graph
 * expects on an application. (CSRs are in csr.ts, private keys in private-key.ts and
 * key-encryption.ts.)
 *
 * Every key handed back is unencrypted PKCS#8 PEM (what MSAL needs; it has no passphrase
 * option); `encryptPrivateKey` makes the encrypted PKCS#8 form for storage at rest.
 *
 * @example
 *   const { privateKeyPem, certificatePem } = importPkcs12(readFileSync('partner.pfx'), 'secret');
 */
import forge from 'node-forge';
import { parseCertificate, type ParsedCertificate } from './certificate';
import { CertificateError } from './errors';
import { readPrivateKey } from './private-key';

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

/** A PFX/PKCS#12 bundle (key under PBES2 AES-256-CBC, PBKDF2-HMAC-SHA1 2,048 iterations; SHA-1 MAC, as node-forge writes it) that Windows, OpenSSL, Java 17 and Azure Key Vault read. */
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
