import { chmodSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSelfSignedCertificate, parseCertificate } from '@certflow/certs';
import { CertificateStore, CertificateStoreError, summarize } from './certificate-store';
import { tempDir } from './test-servers.test-helpers';

function storeError(fn: () => unknown): CertificateStoreError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CertificateStoreError);
    return err as CertificateStoreError;
  }
  throw new Error('expected a CertificateStoreError');
}

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
    expect(mode(created.privateKeyPath)).toBe(0o600);
    const keyPem = readFileSync(created.privateKeyPath, 'utf8');
    expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
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
    expect(readFileSync(first.privateKeyPath, 'utf8')).toBe(first.privateKeyPem);

    const second = store.create({ force: true });
    expect(second.certificate.thumbprints.sha256Hex).not.toBe(first.certificate.thumbprints.sha256Hex);
    expect(store.load().certificate.thumbprints.sha256Hex).toBe(second.certificate.thumbprints.sha256Hex);
    expect(mode(second.privateKeyPath)).toBe(0o600);
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
    store.create();
    rmSync(store.paths.cerPath);
    const err = storeError(() => store.load());
    expect(err.code).toBe('ERR_CERT_INCOMPLETE');
    expect(err.path).toBe(store.paths.cerPath);
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
    store.create();
    const other = parseCertificate(createSelfSignedCertificate({ commonName: 'other' }).certificatePem);
    writeFileSync(store.paths.cerPath, other.der);
    const err = storeError(() => store.load());
    expect(err.code).toBe('ERR_STATE_DAMAGED');
    expect(err.path).toBe(store.paths.cerPath);
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
    [
      'partner.key.pem',
      'privateKeyPath',
      '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
      'ERR_KEY_MALFORMED',
    ],
  ] as const)('names a damaged %s', (file, key, content, code) => {
    store.create();
    writeFileSync(store.paths[key], content);
    const err = storeError(() => store.load());
    expect(err.code).toBe(code);
    expect(err.message).toContain(file);
  });

  it('refuses an encrypted key with a clear message', () => {
    store.create();
    writeFileSync(
      store.paths.privateKeyPath,
      '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n',
    );
    expect(storeError(() => store.load()).message).toMatch(/encrypted key, which is not supported/);
  });
});
