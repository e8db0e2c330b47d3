import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';
import { describe, expect, it } from 'vitest';
import { assertKeyMatchesCertificate, parseCertificate } from './certificate';
import { CertificateError } from './errors';
import { createCsr, inspectCsr } from './csr';
import { exportPkcs12, importPkcs12, keyCredentialFor } from './formats';
import { encryptPrivateKey } from './key-encryption';
import { isEncryptedPrivateKey, readPrivateKey } from './private-key';
import { createCertificateAuthority, createSelfSignedCertificate, issueCertificate } from './generate';

const pair = createSelfSignedCertificate({ commonName: 'formats-test' });

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as CertificateError).code;
  }
  return undefined;
}

describe('createCsr', () => {
  it('makes a signed PKCS#10 request with a new key, or with a given one', () => {
    const { csrPem, privateKeyPem } = createCsr({ commonName: 'contoso-partner', organization: 'Contoso' });
    expect(csrPem).toMatch(/-----BEGIN CERTIFICATE REQUEST-----/);
    expect(privateKeyPem).toMatch(/-{5}BEGIN PRIVATE KEY-{5}/);
    expect(inspectCsr(csrPem)).toEqual({ commonName: 'contoso-partner', verified: true });
    const csr = forge.pki.certificationRequestFromPem(csrPem);
    const fromCsr = forge.pki.publicKeyToPem(csr.publicKey!);
    expect(createPublicKey(fromCsr).export({ format: 'jwk' })).toEqual(
      createPublicKey(createPrivateKey(privateKeyPem)).export({ format: 'jwk' }),
    );
    const again = createCsr({ commonName: 'x', privateKeyPem: pair.privateKeyPem });
    expect(again.privateKeyPem).toBe(readPrivateKey(pair.privateKeyPem));
  });
});

describe('private keys', () => {
  const pkcs8 = pair.privateKeyPem;
  const pkcs1 = createPrivateKey(pkcs8).export({ type: 'pkcs1', format: 'pem' }).toString();
  const encrypted = encryptPrivateKey(pkcs8, 'correct horse battery');

  it('reads PKCS#1, PKCS#8 and encrypted PKCS#8 as PKCS#8', () => {
    expect(pkcs1).toMatch(/BEGIN RSA PRIVATE KEY/);
    expect(readPrivateKey(pkcs1)).toBe(readPrivateKey(pkcs8));
    expect(isEncryptedPrivateKey(encrypted)).toBe(true);
    expect(encrypted).toMatch(/BEGIN ENCRYPTED PRIVATE KEY/);
    expect(readPrivateKey(encrypted, 'correct horse battery')).toBe(readPrivateKey(pkcs8));
  });

  it('names a missing or wrong passphrase and garbage', () => {
    expect(codeOf(() => readPrivateKey(encrypted))).toBe('ERR_KEY_ENCRYPTED');
    expect(codeOf(() => readPrivateKey(encrypted, 'wrong passphrase'))).toBe('ERR_WRONG_PASSWORD');
    expect(codeOf(() => readPrivateKey('hello'))).toBe('ERR_KEY_MALFORMED');
    expect(() => encryptPrivateKey(pkcs8, 'short')).toThrow(/8 characters/);
  });

  it('a key of another pair is a mismatch', () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    expect(codeOf(() => assertKeyMatchesCertificate(other, parseCertificate(pair.certificatePem)))).toBe(
      'ERR_CERT_KEY_MISMATCH',
    );
  });
});

describe('PKCS#12', () => {
  it('round-trips key, certificate and chain with a password', () => {
    const ca = createCertificateAuthority({ commonName: 'partner CA' });
    const issued = issueCertificate(ca, { commonName: 'issued-partner' });
    const pfx = exportPkcs12({
      privateKeyPem: issued.privateKeyPem,
      certificatePem: issued.certificatePem,
      chainPems: [ca.certificatePem],
      password: 'pfx-password',
      friendlyName: 'partner',
    });
    expect(pfx[0]).toBe(0x30);
    const back = importPkcs12(pfx, 'pfx-password');
    expect(parseCertificate(back.certificatePem).thumbprints).toEqual(
      parseCertificate(issued.certificatePem).thumbprints,
    );
    expect(back.privateKeyPem).toBe(readPrivateKey(issued.privateKeyPem));
    expect(back.chainPems.map((p) => parseCertificate(p).subject)).toEqual(['CN=partner CA']);
  });

  it('says so on a wrong password or a file that is not PKCS#12', () => {
    const pfx = exportPkcs12({
      privateKeyPem: pair.privateKeyPem,
      certificatePem: pair.certificatePem,
      password: 'right',
    });
    expect(codeOf(() => importPkcs12(pfx, 'wrong'))).toBe('ERR_WRONG_PASSWORD');
    expect(codeOf(() => importPkcs12(Buffer.from('not a pfx'), 'x'))).toBe('ERR_PKCS12_MALFORMED');
  });
});

describe('keyCredentialFor', () => {
  it('is the JSON Graph expects', () => {
    const cert = parseCertificate(pair.certificatePem);
    expect(keyCredentialFor(cert, { displayName: 'partner 2026' })).toEqual({
      type: 'AsymmetricX509Cert',
      usage: 'Verify',
      key: cert.der.toString('base64'),
      displayName: 'partner 2026',
      customKeyIdentifier: cert.thumbprints.sha1Hex,
      startDateTime: cert.notBefore.toISOString(),
      endDateTime: cert.notAfter.toISOString(),
    });
    expect(keyCredentialFor(pair.certificatePem, { customKeyIdentifier: false })).not.toHaveProperty(
      'customKeyIdentifier',
    );
    expect(keyCredentialFor(pair.certificatePem).displayName).toBe('CN=formats-test');
  });
});
