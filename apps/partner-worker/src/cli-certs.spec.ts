/** The certificate lifecycle commands: export, import, csr, encrypted keys at rest, expiry. */
import { createPrivateKey } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CertificateStore } from '@certflow/partner-client';
import {
  createCertificateAuthority,
  createSelfSignedCertificate,
  importPkcs12,
  parseCertificate,
  signCsr,
} from '@certflow/certs';
import { runCaptured } from './cli.test-helpers';
import { tempDir } from '@certflow/testing';

const run = runCaptured;

describe('CLI certificate lifecycle', () => {
  const dir = tempDir();
  const cwd = dir.path;
  afterAll(() => dir.remove());

  it('cert create with PARTNER_KEY_PASSPHRASE keeps the key encrypted; show needs the passphrase', async () => {
    const env = { PARTNER_CERT_DIR: 'enc', PARTNER_KEY_PASSPHRASE: 'a passphrase' };
    expect((await run(['cert', 'create'], env, cwd)).code).toBe(0);
    expect(readFileSync(join(cwd, 'enc/partner.key.pem'), 'utf8')).toMatch(/BEGIN ENCRYPTED PRIVATE KEY/);
    expect((await run(['cert', 'show'], env, cwd)).code).toBe(0);
    const without = await run(['cert', 'show'], { PARTNER_CERT_DIR: 'enc' }, cwd);
    expect(without.code).toBe(1);
    expect(without.err).toMatch(/encrypted; set PARTNER_KEY_PASSPHRASE/);
    const wrong = await run(['cert', 'show'], { ...env, PARTNER_KEY_PASSPHRASE: 'the wrong one' }, cwd);
    expect(wrong.err).toMatch(/wrong PARTNER_KEY_PASSPHRASE/);
  });

  it('cert create --key-size 3072 makes an RSA 3072 key; a size outside 2048/3072/4096 writes nothing', async () => {
    const env = { PARTNER_CERT_DIR: 'rsa3072' };
    const bad = await run(['cert', 'create', '--key-size', '1024'], env, cwd);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--key-size must be 2048, 3072 or 4096, got "1024"/);
    expect(new CertificateStore(join(cwd, 'rsa3072')).exists()).toBe(false);

    expect((await run(['cert', 'create', '--key-size', '3072'], env, cwd)).code).toBe(0);
    const stored = new CertificateStore(join(cwd, 'rsa3072')).load();
    expect(stored.certificate.publicKey.asymmetricKeyDetails?.modulusLength).toBe(3072);
    expect(createPrivateKey(stored.privateKeyPem!).asymmetricKeyDetails?.modulusLength).toBe(3072);

    const csr = await run(['cert', 'csr', '--key-size', '3072', '--json'], env, cwd);
    expect(csr.code).toBe(0);
    const pending = readFileSync(join(cwd, 'rsa3072', 'partner.pending.key.pem'), 'utf8');
    expect(createPrivateKey(pending).asymmetricKeyDetails?.modulusLength).toBe(3072);
  });

  it('cert export: cer, pem, keycredential, pfx', async () => {
    const env = { PARTNER_CERT_DIR: 'exp' };
    await run(['cert', 'create', '--common-name', 'exporter'], env, cwd);
    const cert = parseCertificate(readFileSync(join(cwd, 'exp/partner.crt.pem')));

    expect((await run(['cert', 'export', '--format', 'cer', '--out', 'out.cer'], env, cwd)).code).toBe(0);
    expect(readFileSync(join(cwd, 'out.cer')).equals(cert.der)).toBe(true);
    expect((await run(['cert', 'export', '--format', 'pem'], env, cwd)).out).toBe(cert.pem.trimEnd());

    const kc = JSON.parse(
      (await run(['cert', 'export', '--format', 'keycredential'], env, cwd)).out,
    ) as Record<string, unknown>;
    expect(kc).toMatchObject({
      type: 'AsymmetricX509Cert',
      usage: 'Verify',
      key: cert.der.toString('base64'),
      displayName: 'CN=exporter',
      customKeyIdentifier: cert.thumbprints.sha1Hex,
    });

    const noPassword = await run(['cert', 'export', '--format', 'pfx', '--out', 'p.pfx'], env, cwd);
    expect(noPassword.code).toBe(1);
    expect(noPassword.err).toMatch(/PARTNER_PFX_PASSWORD/);
    const pfxEnv = { ...env, PARTNER_PFX_PASSWORD: 'pfx secret' };
    expect((await run(['cert', 'export', '--format', 'pfx', '--out', 'p.pfx'], pfxEnv, cwd)).code).toBe(0);
    expect(statSync(join(cwd, 'p.pfx')).mode & 0o777).toBe(0o600);
    expect(
      parseCertificate(
        importPkcs12(readFileSync(join(cwd, 'p.pfx')), 'pfx secret').certificatePem,
      ).der.equals(cert.der),
    ).toBe(true);

    expect((await run(['cert', 'export', '--format', 'cer'], env, cwd)).code).toBe(2);
    expect((await run(['cert', 'export', '--format', 'zip'], env, cwd)).code).toBe(2);
  });

  it('cert import --pfx, with a wrong password refused before anything is written', async () => {
    await run(['cert', 'create'], { PARTNER_CERT_DIR: 'src' }, cwd);
    await run(
      ['cert', 'export', '--format', 'pfx', '--out', 'src.pfx'],
      { PARTNER_CERT_DIR: 'src', PARTNER_PFX_PASSWORD: 'right password' },
      cwd,
    );
    const bad = await run(
      ['cert', 'import', '--pfx', 'src.pfx'],
      { PARTNER_CERT_DIR: 'imp', PARTNER_PFX_PASSWORD: 'wrong' },
      cwd,
    );
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/wrong password/);
    const ok = await run(
      ['cert', 'import', '--pfx', 'src.pfx', '--json'],
      { PARTNER_CERT_DIR: 'imp', PARTNER_PFX_PASSWORD: 'right password' },
      cwd,
    );
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.out)).toMatchObject({ event: 'certificate', created: true, status: 'valid' });
    expect((await run(['cert', 'show'], { PARTNER_CERT_DIR: 'imp' }, cwd)).code).toBe(0);
  });

  it('cert import --cert --key: a mismatched key or an expired certificate is a clear error', async () => {
    const a = createSelfSignedCertificate({ commonName: 'a' });
    const b = createSelfSignedCertificate({ commonName: 'b' });
    const old = createSelfSignedCertificate({ commonName: 'old', days: 1, now: new Date('2021-01-01') });
    writeFileSync(join(cwd, 'a.crt'), a.certificatePem);
    writeFileSync(join(cwd, 'b.key'), b.privateKeyPem);
    writeFileSync(join(cwd, 'old.crt'), old.certificatePem);
    writeFileSync(join(cwd, 'old.key'), old.privateKeyPem);
    const env = { PARTNER_CERT_DIR: 'pem' };
    expect((await run(['cert', 'import', '--cert', 'a.crt', '--key', 'b.key'], env, cwd)).err).toMatch(
      /does not belong/,
    );
    expect((await run(['cert', 'import', '--cert', 'old.crt', '--key', 'old.key'], env, cwd)).err).toMatch(
      /expired/,
    );
    expect((await run(['cert', 'import', '--pfx', 'x', '--key', 'b.key'], env, cwd)).code).toBe(2);
  });

  it('cert csr, then cert import --cert of the CA-issued certificate', async () => {
    const env = { PARTNER_CERT_DIR: 'csr' };
    const r = await run(
      ['cert', 'csr', '--common-name', 'ca-partner', '--out', 'partner.csr', '--json'],
      env,
      cwd,
    );
    expect(r.code).toBe(0);
    const event = JSON.parse(r.out) as { csr: string };
    expect(readFileSync(join(cwd, 'partner.csr'), 'utf8')).toBe(event.csr);
    writeFileSync(
      join(cwd, 'issued.crt'),
      signCsr(createCertificateAuthority({ commonName: 'Partner CA' }), event.csr),
    );
    expect((await run(['cert', 'import', '--cert', 'issued.crt'], env, cwd)).code).toBe(0);
    const shown = await run(['cert', 'show', '--json'], env, cwd);
    expect(JSON.parse(shown.out)).toMatchObject({ subject: 'CN=ca-partner', issuer: 'CN=Partner CA' });
  });

  it('warns at the configured number of days, and refuses to use an expired certificate', async () => {
    await run(['cert', 'create', '--days', '40'], { PARTNER_CERT_DIR: 'soon' }, cwd);
    const env = {
      PARTNER_CERT_DIR: 'soon',
      PARTNER_CERT_EXPIRY_WARNING_DAYS: '60',
      PARTNER_TENANT_ID: '00000000-0000-0000-0000-000000000001',
      PARTNER_CLIENT_ID: '00000000-0000-0000-0000-000000000002',
      PARTNER_SCOPE: 'api://x/.default',
      ENTRA_INSTANCE: 'https://127.0.0.1:1',
    };
    const r = await run(['token', 'get'], env, cwd);
    expect(r.err).toMatch(/warning: the certificate expires in 39 days/);
    // An expired certificate (import refuses one; create can make one): token get stops before any request.
    const store = new CertificateStore(join(cwd, 'expired'));
    store.create({ now: new Date('2021-01-01'), days: 1 });
    const expired = await run(['token', 'get'], { ...env, PARTNER_CERT_DIR: 'expired' }, cwd);
    expect(expired.code).toBe(1);
    expect(expired.err).toMatch(/certificate expired at/);
  });
});
