import { createPrivateKey } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CertificateStore } from './certificate-store';
import { storeError } from './store.test-helpers';
import { summarize } from './certificate-summary';
import {
  createCertificateAuthority,
  createSelfSignedCertificate,
  encryptPrivateKey,
  exportPkcs12,
  parseCertificate,
  readPrivateKey,
  signCsr,
} from '@certflow/certs';
import { tempDir } from '@certflow/testing';

/** A PEM block with a body too short to be a key (built, so no key-looking literal sits in the repository). */
const damagedPem = (label: string): string => `-----BEGIN ${label}-----\nAAAA\n-----END ${label}-----\n`;

const mode = (path: string) => statSync(path).mode & 0o777;

describe('CertificateStore', () => {
  let dir: ReturnType<typeof tempDir>;
  let store: CertificateStore;
  beforeEach(() => {
    dir = tempDir();
    store = new CertificateStore(join(dir.path, 'state', 'partner'));
  });
  afterEach(() => dir.remove());

  it('creates the key (PKCS#8, 0600), the certificate (PEM) and the .cer (DER) in a 0700 directory', () => {
    const created = store.create({ commonName: 'contoso-partner', days: 30 });
    expect(mode(store.directory)).toBe(0o700);
    expect(mode(created.privateKeyPath!)).toBe(0o600);
    const keyPem = readFileSync(created.privateKeyPath!, 'utf8');
    expect(keyPem).toMatch(/^-{5}BEGIN PRIVATE KEY-{5}/);
    const der = readFileSync(created.cerPath);
    expect(der[0]).toBe(0x30);
    expect(der.includes(Buffer.from('-----BEGIN'))).toBe(false);
    const pem = parseCertificate(readFileSync(created.certificatePath, 'utf8'));
    expect(pem.der.equals(der)).toBe(true);
    expect(pem.subject).toBe('CN=contoso-partner');
    expect(created.certificate.thumbprints.sha256Hex).toMatch(/^[0-9A-F]{64}$/);

    const loaded = store.load();
    expect(loaded.privateKeyPem).toBe(keyPem);
    expect(loaded.certificate.thumbprints).toEqual(created.certificate.thumbprints);
    const summary = summarize(loaded);
    expect(summary).toMatchObject({
      status: 'valid',
      subject: 'CN=contoso-partner',
      cerPath: created.cerPath,
    });
    expect(summary.daysUntilExpiry).toBeGreaterThanOrEqual(29);
    expect(JSON.stringify(summary)).not.toContain('PRIVATE KEY');
  });

  it('refuses to overwrite without force, replaces with force', () => {
    const first = store.create();
    const err = storeError(() => store.create());
    expect(err.code).toBe('ERR_CERT_EXISTS');
    expect(err.message).toMatch(/--force/);
    expect(readFileSync(first.privateKeyPath!, 'utf8')).toBe(first.privateKeyPem);

    const second = store.create({ force: true });
    expect(second.certificate.thumbprints.sha256Hex).not.toBe(first.certificate.thumbprints.sha256Hex);
    expect(store.load().certificate.thumbprints.sha256Hex).toBe(second.certificate.thumbprints.sha256Hex);
    expect(mode(second.privateKeyPath!)).toBe(0o600);
  });

  it('refuses to overwrite when only one file is left over', () => {
    store.create();
    writeFileSync(store.paths.certificatePath, ''); // still exists
    expect(storeError(() => store.create()).code).toBe('ERR_CERT_EXISTS');
  });

  it('validates its options', () => {
    expect(() => store.create({ days: 0 })).toThrow(/days/);
    expect(() => store.create({ days: 1.5 })).toThrow(/days/);
    expect(() => store.create({ commonName: ' ' })).toThrow(/common name/);
    expect(store.exists()).toBe(false);
  });

  it('reports a missing certificate, and an incomplete one naming the missing file', () => {
    expect(storeError(() => store.load()).code).toBe('ERR_CERT_NOT_FOUND');
    const created = store.create();
    rmSync(created.cerPath);
    const err = storeError(() => store.load());
    expect(err.code).toBe('ERR_CERT_INCOMPLETE');
    expect(err.path).toBe(created.cerPath);
    expect(err.message).toContain('partner.cer');
  });

  it('rejects a key that does not belong to the certificate', () => {
    store.create();
    const other = createSelfSignedCertificate({ commonName: 'other' });
    writeFileSync(store.paths.privateKeyPath, other.privateKeyPem, { mode: 0o600 });
    const err = storeError(() => store.load());
    expect(err.code).toBe('ERR_CERT_KEY_MISMATCH');
    expect(err.message).toContain('partner.key.pem');
  });

  it('rejects a .cer that is not the same certificate as the PEM', () => {
    const created = store.create();
    const other = parseCertificate(createSelfSignedCertificate({ commonName: 'other' }).certificatePem);
    writeFileSync(created.cerPath, other.der);
    const err = storeError(() => store.load());
    expect(err.code).toBe('ERR_STATE_DAMAGED');
    expect(err.path).toBe(created.cerPath);
  });

  it('rejects an expired certificate before any network call, but read() still shows it', () => {
    store.create({ days: 1, now: new Date(Date.now() - 3 * 86_400_000) });
    const err = storeError(() => store.load());
    expect(err.code).toBe('ERR_CERT_EXPIRED');
    expect(err.message).toMatch(/partner\.crt\.pem: certificate expired at .*cert create --force/);
    expect(summarize(store.read()).status).toBe('expired');
  });

  it('rejects a certificate that is not yet valid', () => {
    store.create({ days: 10, now: new Date(Date.now() + 2 * 86_400_000) });
    expect(storeError(() => store.load()).code).toBe('ERR_CERT_NOT_YET_VALID');
  });

  it('rejects a private key readable by others', () => {
    store.create();
    chmodSync(store.paths.privateKeyPath, 0o644);
    const err = storeError(() => store.load());
    expect(err.code).toBe('ERR_KEY_PERMISSIONS');
    expect(err.message).toMatch(/mode 0644.*chmod 600/);
  });

  it.each([
    ['partner.crt.pem', 'certificatePath', 'garbage', 'ERR_CERT_MALFORMED'],
    ['partner.cer', 'cerPath', '\x30\x03\x01\x02\x03', 'ERR_CERT_MALFORMED'],
    ['partner.key.pem', 'privateKeyPath', 'not a key', 'ERR_KEY_MALFORMED'],
    ['partner.key.pem', 'privateKeyPath', damagedPem('PRIVATE KEY'), 'ERR_KEY_MALFORMED'],
  ] as const)('names a damaged %s', (file, key, content, code) => {
    store.create();
    writeFileSync(store.paths[key], content);
    const err = storeError(() => store.load());
    expect(err.code).toBe(code);
    expect(err.message).toContain(file);
  });

  it('refuses an encrypted key without a passphrase, naming the variable', () => {
    store.create();
    writeFileSync(store.paths.privateKeyPath, damagedPem('ENCRYPTED PRIVATE KEY'));
    const err = storeError(() => store.load());
    expect(err.code).toBe('ERR_KEY_ENCRYPTED');
    expect(err.message).toMatch(/PARTNER_KEY_PASSPHRASE/);
  });

  it('keeps the key encrypted at rest with a passphrase, and names a wrong one', () => {
    const created = store.create({ force: true, passphrase: 'at-rest-passphrase' });
    expect(readFileSync(store.paths.privateKeyPath, 'utf8')).toMatch(/BEGIN ENCRYPTED PRIVATE KEY/);
    expect(statSync(store.paths.privateKeyPath).mode & 0o777).toBe(0o600);
    const loaded = store.load(new Date(), { passphrase: 'at-rest-passphrase' });
    expect(loaded.privateKeyPem).toBe(readPrivateKey(created.privateKeyPem!));
    expect(loaded.privateKeyPem).toMatch(/BEGIN PRIVATE KEY/);
    expect(storeError(() => store.load(new Date(), { passphrase: 'wrong-passphrase' })).code).toBe(
      'ERR_WRONG_PASSWORD',
    );
  });
});

describe('CertificateStore import and CSR', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());
  const other = createSelfSignedCertificate({ commonName: 'someone-else' });

  it('imports a PFX with its password; a wrong password is a clear error and writes nothing', () => {
    const pair = createSelfSignedCertificate({ commonName: 'from-pfx' });
    const pfx = exportPkcs12({ ...pair, password: 'pfx-pass' });
    const store = new CertificateStore(join(dir.path, 'pfx'));
    expect(storeErrorOf(() => store.import({ pfx, pfxPassword: 'nope' })).code).toBe('ERR_WRONG_PASSWORD');
    expect(store.exists()).toBe(false);
    const imported = store.import({ pfx, pfxPassword: 'pfx-pass' });
    expect(imported.certificate.subject).toBe('CN=from-pfx');
    expect(store.load().certificate.thumbprints).toEqual(parseCertificate(pair.certificatePem).thumbprints);
  });

  it('imports PEM certificate + PKCS#1 or encrypted PKCS#8 key; refuses a mismatched key and an expired certificate', () => {
    const pair = createSelfSignedCertificate({ commonName: 'from-pem' });
    const store = new CertificateStore(join(dir.path, 'pem'));
    const pkcs1 = createPrivateKey(pair.privateKeyPem).export({ type: 'pkcs1', format: 'pem' }).toString();
    expect(
      storeErrorOf(() =>
        store.import({ certificate: pair.certificatePem, privateKeyPem: other.privateKeyPem }),
      ).code,
    ).toBe('ERR_CERT_KEY_MISMATCH');
    const expired = createSelfSignedCertificate({ commonName: 'old', days: 1, now: new Date('2020-01-01') });
    expect(
      storeErrorOf(() =>
        store.import({ certificate: expired.certificatePem, privateKeyPem: expired.privateKeyPem }),
      ).code,
    ).toBe('ERR_CERT_EXPIRED');
    expect(store.exists()).toBe(false);
    store.import({ certificate: pair.certificatePem, privateKeyPem: pkcs1 });
    const encrypted = encryptPrivateKey(pair.privateKeyPem, 'key-passphrase');
    expect(
      storeErrorOf(() =>
        store.import({ certificate: pair.certificatePem, privateKeyPem: encrypted, force: true }),
      ).code,
    ).toBe('ERR_KEY_ENCRYPTED');
    store.import({
      certificate: parseCertificate(pair.certificatePem).der,
      privateKeyPem: encrypted,
      keyPassphrase: 'key-passphrase',
      force: true,
    });
    expect(store.load().privateKeyPem).toBe(readPrivateKey(pair.privateKeyPem));
  });

  it('cert csr then import of the CA-issued certificate uses the pending key', () => {
    const store = new CertificateStore(join(dir.path, 'csr'));
    const { csrPem, pendingKeyPath } = store.createCsr({ commonName: 'ca-issued-partner' });
    expect(statSync(pendingKeyPath).mode & 0o777).toBe(0o600);
    // The "CA": signs the CSR's public key.
    const ca = createCertificateAuthority({ commonName: 'Partner CA' });
    const imported = store.import({ certificate: signCsr(ca, csrPem, { days: 30 }) });
    expect(imported.certificate.issuer).toBe('CN=Partner CA');
    expect(existsSync(pendingKeyPath)).toBe(false);
    expect(store.load().certificate.subject).toBe('CN=ca-issued-partner');
  });
});

function storeErrorOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    return err as { code: string; message: string };
  }
  throw new Error('expected an error');
}
