import { describe, expect, it } from 'vitest';
import { X509Certificate, createHash, createSign, createVerify } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CertificateError,
  DevelopmentCa,
  assertCertificateValidAt,
  assertKeyMatchesCertificate,
  createSelfSignedCertificate,
  daysUntilExpiry,
  derToPem,
  parseCertificate,
  pemToDer,
  writeFileAtomic,
  writePrivateKeyFile,
} from './index';

const partner = createSelfSignedCertificate({ commonName: 'contoso-partner', days: 30 });

function errorCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof CertificateError ? err.code : `not a CertificateError: ${String(err)}`;
  }
  return undefined;
}

describe('self-signed partner certificate', () => {
  it('is a valid X.509 certificate whose key signs what the certificate verifies', () => {
    const x509 = new X509Certificate(partner.certificatePem);
    expect(x509.subject).toBe('CN=contoso-partner');
    expect(x509.issuer).toBe(x509.subject);
    expect(x509.verify(x509.publicKey)).toBe(true);
    const signature = createSign('sha256').update('assertion').sign(partner.privateKeyPem);
    expect(createVerify('sha256').update('assertion').verify(x509.publicKey, signature)).toBe(true);
    expect(partner.privateKeyPem).toMatch(/^-{5}BEGIN PRIVATE KEY-{5}/);
  });

  it('round-trips between PEM and DER (.cer)', () => {
    const der = pemToDer(partner.certificatePem);
    expect(der[0]).toBe(0x30);
    expect(parseCertificate(der).pem).toBe(parseCertificate(derToPem(der)).pem);
  });

  it('computes the thumbprints Entra ID and MSAL use', () => {
    const der = pemToDer(partner.certificatePem);
    const { thumbprints } = parseCertificate(der);
    const sha1 = createHash('sha1').update(der).digest();
    const sha256 = createHash('sha256').update(der).digest();
    expect(thumbprints.sha1Hex).toBe(sha1.toString('hex').toUpperCase());
    expect(thumbprints.sha256Hex).toBe(sha256.toString('hex').toUpperCase());
    expect(thumbprints.sha1Base64Url).toBe(sha1.toString('base64url'));
    expect(thumbprints.sha256Base64Url).toBe(sha256.toString('base64url'));
    // Node's own fingerprint agrees, modulo its colon format.
    expect(new X509Certificate(der).fingerprint256.replace(/:/g, '')).toBe(thumbprints.sha256Hex);
  });

  it('accepts base64 DER as Graph keyCredential.key carries it', () => {
    const b64 = pemToDer(partner.certificatePem).toString('base64');
    expect(parseCertificate(b64).thumbprints).toEqual(parseCertificate(partner.certificatePem).thumbprints);
  });

  it('knows its validity period', () => {
    const cert = parseCertificate(partner.certificatePem);
    expect(daysUntilExpiry(cert)).toBe(29);
    expect(() => assertCertificateValidAt(cert)).not.toThrow();
    expect(errorCode(() => assertCertificateValidAt(cert, new Date(Date.now() + 31 * 86_400_000)))).toBe(
      'ERR_CERT_EXPIRED',
    );
    expect(errorCode(() => assertCertificateValidAt(cert, new Date(Date.now() - 3_600_000)))).toBe(
      'ERR_CERT_NOT_YET_VALID',
    );
  });

  it('rejects key sizes Entra ID would not accept', () => {
    expect(() => createSelfSignedCertificate({ commonName: 'x', keySize: 1024 as 2048 })).toThrow(/keySize/);
    expect(() => createSelfSignedCertificate({ commonName: 'x', days: 0 })).toThrow(/days/);
  });
});

describe('refusing what must not be trusted', () => {
  it('refuses a file that holds a private key, even next to a certificate', () => {
    expect(errorCode(() => parseCertificate(partner.privateKeyPem + partner.certificatePem))).toBe(
      'ERR_CERT_CONTAINS_PRIVATE_KEY',
    );
  });

  it('refuses malformed input', () => {
    expect(errorCode(() => parseCertificate(Buffer.from([0x30, 0x03, 0x01, 0x02])))).toBe(
      'ERR_CERT_MALFORMED',
    );
    expect(errorCode(() => parseCertificate('hello, world!'))).toBe('ERR_CERT_MALFORMED');
    expect(
      errorCode(() => parseCertificate('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----')),
    ).toBe('ERR_CERT_MALFORMED');
  });

  it('detects a private key that does not belong to the certificate', () => {
    const other = createSelfSignedCertificate({ commonName: 'someone-else' });
    const cert = parseCertificate(partner.certificatePem);
    expect(() => assertKeyMatchesCertificate(partner.privateKeyPem, cert)).not.toThrow();
    expect(errorCode(() => assertKeyMatchesCertificate(other.privateKeyPem, cert))).toBe(
      'ERR_CERT_KEY_MISMATCH',
    );
    expect(errorCode(() => assertKeyMatchesCertificate('not a key', cert))).toBe('ERR_KEY_MALFORMED');
  });
});

describe('files', () => {
  it('writes private keys readable by their owner only', () => {
    const dir = mkdtempSync(join(tmpdir(), 'certflow-certs-'));
    try {
      const path = join(dir, 'nested', 'partner.key.pem');
      writePrivateKeyFile(path, partner.privateKeyPem);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(statSync(join(dir, 'nested')).mode & 0o777).toBe(0o700);
      expect(readFileSync(path, 'utf8')).toBe(partner.privateKeyPem);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('writeFileAtomic', () => {
  it('replaces a file whole, with its mode, and leaves no temporary file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'certflow-atomic-'));
    try {
      const path = join(dir, 'state.json');
      writeFileAtomic(path, 'old', 0o600);
      writeFileAtomic(path, new Uint8Array([110, 101, 119]), 0o640);
      expect(readFileSync(path, 'utf8')).toBe('new');
      expect(statSync(path).mode & 0o777).toBe(0o640);
      expect(readdirSync(dir)).toEqual(['state.json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('when the rename fails, throws, leaves the target as it was and removes its temporary file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'certflow-atomic-'));
    try {
      const target = join(dir, 'taken');
      mkdirSync(join(target, 'inside'), { recursive: true }); // a non-empty directory cannot be renamed over
      expect(() => writeFileAtomic(target, 'data', 0o600)).toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
      expect(readdirSync(dir)).toEqual(['taken']);
      expect(readdirSync(target)).toEqual(['inside']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('development CA', () => {
  it('is created once, reused after, and issues server certificates that chain to it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'certflow-ca-'));
    try {
      const ca = DevelopmentCa.loadOrCreate(dir);
      expect(statSync(join(dir, 'ca', 'ca.key.pem')).mode & 0o777).toBe(0o600);
      expect(ca.certificate.isCa).toBe(true);
      const again = DevelopmentCa.loadOrCreate(dir);
      expect(again.certificate.thumbprints).toEqual(ca.certificate.thumbprints);

      const server = ca.issueServerCertificate();
      const x509 = new X509Certificate(server.certificatePem);
      expect(x509.checkIssued(new X509Certificate(ca.certificatePem))).toBe(true);
      expect(x509.verify(ca.certificate.publicKey)).toBe(true);
      expect(x509.checkHost('localhost')).toBe('localhost');
      expect(x509.checkIP('127.0.0.1')).toBe('127.0.0.1');
      expect(x509.checkHost('example.com')).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a damaged CA instead of silently replacing it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'certflow-ca-'));
    try {
      DevelopmentCa.loadOrCreate(dir);
      writeFileSync(join(dir, 'ca', 'ca.crt.pem'), 'garbage');
      expect(errorCode(() => DevelopmentCa.loadOrCreate(dir))).toBe('ERR_STATE_DAMAGED');
      expect(readFileSync(join(dir, 'ca', 'ca.crt.pem'), 'utf8')).toBe('garbage');

      rmSync(join(dir, 'ca', 'ca.crt.pem'));
      expect(() => DevelopmentCa.loadOrCreate(dir)).toThrow(/incomplete \(ca\.crt\.pem missing\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
