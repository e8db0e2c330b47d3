/**
 * The certificate commands with the key inside a PKCS#11 token (a fresh SoftHSM2 token), and
 * `cert reencrypt`: what the partner types, what it is told, and what is refused and why.
 */
import { createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSelfSignedCertificate, describeKeyEncryption, exportPkcs12 } from '@certflow/certs';
import { createSoftHsmToken, tempDir, type SoftHsmToken } from '@certflow/testing';
import { runCaptured } from './cli.test-helpers';

const run = runCaptured;

describe('CLI with the key in a PKCS#11 token', () => {
  const dir = tempDir();
  const cwd = dir.path;
  let hsm: SoftHsmToken;
  let env: Record<string, string>;
  beforeAll(() => {
    hsm = createSoftHsmToken({ label: 'cli-token' });
    process.env['SOFTHSM2_CONF'] = hsm.conf;
    env = {
      PARTNER_CERT_DIR: 'hsm',
      PARTNER_PKCS11_MODULE: hsm.modulePath,
      PARTNER_PKCS11_PIN: hsm.pin,
    };
  });
  afterAll(() => {
    hsm?.remove();
    dir.remove();
  });

  it('cert create --key-store makes the key in the token; cert show says so; pfx export and key import are refused with the reason', async () => {
    const keyStore = `pkcs11:token=${hsm.label};object=cli-2026`;
    const created = await run(['cert', 'create', '--key-store', keyStore, '--json'], env, cwd);
    expect(created.err).toBe('');
    expect(created.code).toBe(0);
    const event = JSON.parse(created.out) as Record<string, unknown>;
    expect(event).toMatchObject({
      event: 'certificate',
      created: true,
      keyProtection: { store: 'pkcs11', attributes: { sensitive: true, extractable: false } },
    });
    expect(String(event['keyUri'])).toMatch(/^pkcs11:token=cli-token;serial=[0-9a-f]+;object=cli-2026;id=/);
    expect(created.out).not.toContain(hsm.pin);
    expect(existsSync(join(cwd, 'hsm', 'partner.key.pem'))).toBe(false);

    const shown = await run(['cert', 'show'], env, cwd);
    expect(shown.code).toBe(0);
    expect(shown.out).toMatch(
      /private key {4}in a PKCS#11 token: pkcs11:token=cli-token;serial=[0-9a-f]+;object=cli-2026;.*\(2048 bits, sensitive, not extractable: it cannot leave the token\)/,
    );

    const pfx = await run(
      ['cert', 'export', '--format', 'pfx', '--out', 'x.pfx'],
      { ...env, PARTNER_PFX_PASSWORD: 'pfx-password' },
      cwd,
    );
    expect(pfx.code).toBe(1);
    expect(pfx.err).not.toMatch(/Usage:/);
    expect(pfx.err).toMatch(/inside a PKCS#11 token .* cannot leave it.*--format cer, pem or keycredential/);
    expect(existsSync(join(cwd, 'x.pfx'))).toBe(false);
    const cer = await run(['cert', 'export', '--format', 'cer', '--out', 'hsm.cer'], env, cwd);
    expect(cer.code).toBe(0);
    expect(readFileSync(join(cwd, 'hsm.cer'))[0]).toBe(0x30);

    const other = createSelfSignedCertificate({ commonName: 'outside' });
    writeFileSync(join(cwd, 'outside.pfx'), exportPkcs12({ ...other, password: 'pfx-password' }));
    const imported = await run(
      ['cert', 'import', '--pfx', 'outside.pfx', '--force'],
      { ...env, PARTNER_KEY_STORE: keyStore, PARTNER_PFX_PASSWORD: 'pfx-password' },
      cwd,
    );
    expect(imported.code).toBe(1);
    expect(imported.err).toMatch(/keeps this partner's keys inside a PKCS#11 token.*has existed outside it/);
    // The same without PARTNER_KEY_STORE: the certificate in use has its key in the token.
    const sticky = await run(
      ['cert', 'import', '--pfx', 'outside.pfx', '--force'],
      { ...env, PARTNER_PFX_PASSWORD: 'pfx-password' },
      cwd,
    );
    expect(sticky.code).toBe(1);
    expect(sticky.err).toMatch(/The certificate in use keeps this partner's keys inside a PKCS#11 token/);
    // cert create --force does not silently go back to a key file either; --key-store file does, on purpose.
    const downgrade = await run(['cert', 'create', '--force'], env, cwd);
    expect(downgrade.code).toBe(1);
    expect(downgrade.err).toMatch(
      /keeps its key inside a PKCS#11 token: give --key-store pkcs11:… .* or --key-store file/,
    );
    expect((await run(['cert', 'show', '--json'], env, cwd)).out).toContain('cli-2026');
    expect((await run(['cert', 'show', '--json'], env, cwd)).out).toContain('cli-2026');
    const toFile = await run(['cert', 'create', '--force', '--key-store', 'file', '--json'], env, cwd);
    expect(toFile.code).toBe(0);
    expect(JSON.parse(toFile.out)).toMatchObject({ keyProtection: { store: 'file' } });
    expect(existsSync(join(cwd, 'hsm', 'partner.key.pem'))).toBe(true);
  });

  it('refuses contradictory or wrong settings before anything is made, naming the option', async () => {
    const keyStore = `pkcs11:token=${hsm.label};object=refused`;
    const both = await run(
      ['cert', 'create', '--key-store', keyStore],
      { ...env, PARTNER_CERT_DIR: 'both', PARTNER_KEY_PASSPHRASE: 'a passphrase' },
      cwd,
    );
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/PARTNER_KEY_PASSPHRASE encrypts key files/);
    const notUri = await run(
      ['cert', 'create', '--key-store', '/dev/hsm0'],
      { ...env, PARTNER_CERT_DIR: 'x' },
      cwd,
    );
    expect(notUri.err).toMatch(/--key-store must be a PKCS#11 URI/);
    const badEnv = await run(
      ['cert', 'create'],
      { ...env, PARTNER_CERT_DIR: 'x', PARTNER_KEY_STORE: 'pkcs11:toekn=a' },
      cwd,
    );
    expect(badEnv.code).toBe(1);
    expect(badEnv.err).toMatch(/PARTNER_KEY_STORE.*did you mean 'token'/);
    const upper = await run(
      ['cert', 'create', '--key-store', ' PKCS11:token=t;object=a;pin-value=SECRETPIN'],
      { ...env, PARTNER_CERT_DIR: 'x' },
      cwd,
    );
    expect(upper.code).toBe(2);
    expect(upper.err).not.toContain('SECRETPIN');
    const pinValue = await run(
      ['cert', 'create', '--key-store', `${keyStore}?pin-value=1234`],
      { ...env, PARTNER_CERT_DIR: 'x' },
      cwd,
    );
    expect(pinValue.code).toBe(2);
    expect(pinValue.err).toMatch(/pin-value/);
    expect(pinValue.err).not.toContain('1234');
    const wrongPin = await run(
      ['cert', 'create', '--key-store', keyStore],
      { ...env, PARTNER_CERT_DIR: 'x', PARTNER_PKCS11_PIN: '000000' },
      cwd,
    );
    expect(wrongPin.code).toBe(1);
    expect(wrongPin.err).toMatch(/PIN/);
    expect(existsSync(join(cwd, 'x'))).toBe(false);
    expect(existsSync(join(cwd, 'both'))).toBe(false);
  });
});

describe('cert reencrypt', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('moves a key file of the old KDF to PBKDF2-SHA256 at 600,000 iterations, optionally under a new passphrase', async () => {
    const env = { PARTNER_CERT_DIR: 'old', PARTNER_KEY_PASSPHRASE: 'old passphrase' };
    const pair = createSelfSignedCertificate({ commonName: 'old-kdf' });
    writeFileSync(join(dir.path, 'old.crt'), pair.certificatePem);
    writeFileSync(join(dir.path, 'old.key'), pair.privateKeyPem, { mode: 0o600 });
    expect((await run(['cert', 'import', '--cert', 'old.crt', '--key', 'old.key'], env, dir.path)).code).toBe(
      0,
    );
    const created = await run(['cert', 'show'], env, dir.path);
    expect(created.out).toMatch(/key encryption PBKDF2-HMAC-SHA256, 600,000 iterations, aes-256-cbc$/m);
    // What the earlier format wrote (OpenSSL's default: PBKDF2, 2,048 iterations), in place of the key.
    const weak = createPrivateKey(pair.privateKeyPem)
      .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'old passphrase' })
      .toString();
    writeFileSync(realpathSync(join(dir.path, 'old', 'partner.key.pem')), weak, { mode: 0o600 });
    const before = await run(['cert', 'show'], env, dir.path);
    expect(before.out).toMatch(
      /key encryption PBKDF2-HMAC-SHA256, 2,048 iterations, aes-256-cbc: weaker than today's default; run "cert reencrypt"/,
    );

    const noPassphrase = await run(['cert', 'reencrypt'], { PARTNER_CERT_DIR: 'old' }, dir.path);
    expect(noPassphrase.code).toBe(2);
    const changed = await run(
      ['cert', 'reencrypt'],
      { ...env, PARTNER_NEW_KEY_PASSPHRASE: 'new passphrase' },
      dir.path,
    );
    expect(changed.err).toBe('');
    expect(changed.code).toBe(0);
    const stored = readFileSync(join(dir.path, 'old', 'partner.key.pem'), 'utf8');
    expect(describeKeyEncryption(stored)).toMatchObject({ iterations: 600_000, strong: true });
    expect(
      (await run(['cert', 'show'], { ...env, PARTNER_KEY_PASSPHRASE: 'new passphrase' }, dir.path)).code,
    ).toBe(0);
    expect((await run(['cert', 'show'], env, dir.path)).err).toMatch(/wrong PARTNER_KEY_PASSPHRASE/);
  });
});
