/**
 * The certificate directory's generations: a switch is one rename of `current`, a directory of
 * the first layout is read as it is and adopted on the first write, and every state a crash can
 * leave during that adoption still loads the same certificate.
 */
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createSelfSignedCertificate,
  describeKeyEncryption,
  parseCertificate,
  readPrivateKey,
} from '@certflow/certs';
import { tempDir } from '@certflow/testing';
import { CertificateStore } from './certificate-store';
import { storeError } from './store.test-helpers';
import { generationBaseName, GenerationLayout, LINKED_FILES } from './generations';
import { acquireRotationLock } from './rotation-lock';

const KEY_ID = '0b5e3a52-3c1e-4b7a-9d0c-6f1f8e2a9b11';

/** A directory of the first layout: the files directly in it, as partner-worker wrote them before generations. */
function writeFirstLayout(dir: string, pem = createSelfSignedCertificate({ commonName: 'first-layout' })) {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const cert = parseCertificate(pem.certificatePem);
  writeFileSync(join(dir, 'partner.key.pem'), pem.privateKeyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'partner.crt.pem'), cert.pem);
  writeFileSync(join(dir, 'partner.cer'), cert.der);
  writeFileSync(join(dir, 'partner.key-id'), `${KEY_ID}\n`);
  return cert;
}

describe('certificate generations', () => {
  let dir: ReturnType<typeof tempDir>;
  let certDir: string;
  beforeEach(() => {
    dir = tempDir();
    certDir = join(dir.path, 'partner');
  });
  afterEach(() => dir.remove());

  it('cert create writes one generation that current names; the old paths are links into it', () => {
    const store = new CertificateStore(certDir);
    const created = store.create({ commonName: 'generations' });
    const gen = store.currentGeneration()!;
    expect(gen).toBe(generationBaseName(created.certificate));
    expect(created.generation).toBe(gen);
    expect(readlinkSync(join(certDir, 'current'))).toBe(`generations/${gen}`);
    for (const name of LINKED_FILES) expect(readlinkSync(join(certDir, name))).toBe(`current/${name}`);
    expect(statSync(join(certDir, 'generations', gen)).mode & 0o777).toBe(0o700);
    expect(statSync(join(certDir, 'partner.key.pem')).mode & 0o777).toBe(0o600);
    // A reader of the old paths gets the current generation's files.
    expect(readFileSync(join(certDir, 'partner.cer')).equals(created.certificate.der)).toBe(true);
    expect(readdirSync(join(certDir, 'generations'))).toEqual([gen]);
  });

  it('--force keeps the replaced generation (not current); switchTo goes back to it in one step', () => {
    const store = new CertificateStore(certDir);
    const first = store.create({ commonName: 'one' });
    const second = store.create({ commonName: 'two', force: true });
    expect(store.generations()).toEqual([first.generation, second.generation].sort());
    expect(store.read().certificate.subject).toBe('CN=two');
    store.switchTo(first.generation!);
    expect(store.read().certificate.subject).toBe('CN=one');
    expect(storeError(() => store.removeGeneration(first.generation!)).message).toMatch(/current generation/);
    store.removeGeneration(second.generation!);
    expect(store.generations()).toEqual([first.generation]);
  });

  it('reads a directory of the first layout as it is, and adopts it (keyId included) on the first write', () => {
    const cert = writeFirstLayout(certDir);
    const store = new CertificateStore(certDir);
    const before = store.load();
    expect(before.generation).toBeUndefined();
    expect(before.certificate.der.equals(cert.der)).toBe(true);
    store.setCurrentKeyId(KEY_ID.replace('0b5e', '1c6f'));
    const gen = store.currentGeneration()!;
    expect(gen).toBe(generationBaseName(cert));
    expect(store.keyIdOf(gen)).toBe(KEY_ID.replace('0b5e', '1c6f'));
    for (const name of ['partner.key.pem', 'partner.crt.pem', 'partner.cer', 'partner.key-id'])
      expect(lstatSync(join(certDir, name)).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(certDir, 'partner.key-id'), 'utf8').trim()).toBe(KEY_ID.replace('0b5e', '1c6f'));
    expect(statSync(join(certDir, 'generations', gen, 'partner.key.pem')).mode & 0o777).toBe(0o600);
    expect(store.load().certificate.der.equals(cert.der)).toBe(true);
  });

  it('every state an interrupted adoption can leave loads the same certificate, and the next write completes it', () => {
    const cert = writeFirstLayout(certDir);
    const layout = new GenerationLayout(certDir);
    const store = new CertificateStore(certDir);
    // 1. Killed after the copy was renamed into generations/, before current: still the first layout.
    const files = Object.fromEntries(
      ['partner.key.pem', 'partner.crt.pem', 'partner.cer', 'partner.key-id'].map((name) => [
        name,
        { data: readFileSync(join(certDir, name)), mode: name === 'partner.key.pem' ? 0o600 : 0o644 },
      ]),
    );
    const copy = layout.write(generationBaseName(cert), files);
    expect(store.load().generation).toBeUndefined();
    expect(store.load().certificate.der.equals(cert.der)).toBe(true);
    // 2. Killed after current, before the files became links: current wins, the files agree with it.
    symlinkSync(`generations/${copy}`, join(certDir, 'current'));
    expect(store.load().generation).toBe(copy);
    expect(store.load().certificate.der.equals(cert.der)).toBe(true);
    // 3. Killed after some links: the rest are still the same bytes.
    symlinkSync('current/partner.cer', join(certDir, '.link-000000000000'));
    expect(store.load().certificate.der.equals(cert.der)).toBe(true);
    // The next write (here: the keyId) finishes it, and leftovers go with removeLeftovers.
    store.setCurrentKeyId(KEY_ID);
    for (const name of ['partner.key.pem', 'partner.crt.pem', 'partner.cer'])
      expect(lstatSync(join(certDir, name)).isSymbolicLink()).toBe(true);
    expect(store.removeLeftovers()).toEqual([join(certDir, '.link-000000000000')]);
    expect(store.generations()).toEqual([copy]);
  });

  it('an adoption killed after its copy was made reuses that copy, never a second one', () => {
    const cert = writeFirstLayout(certDir);
    const layout = new GenerationLayout(certDir);
    const files = Object.fromEntries(
      ['partner.key.pem', 'partner.crt.pem', 'partner.cer', 'partner.key-id'].map((name) => [
        name,
        { data: readFileSync(join(certDir, name)), mode: name === 'partner.key.pem' ? 0o600 : 0o644 },
      ]),
    );
    const copy = layout.write(generationBaseName(cert), files);
    const store = new CertificateStore(certDir);
    store.setCurrentKeyId(KEY_ID);
    expect(store.generations()).toEqual([copy]);
    expect(store.currentGeneration()).toBe(copy);
  });

  it('create, import and reencrypt refuse to run while a rotation is under way, and change nothing', () => {
    const store = new CertificateStore(certDir);
    const first = store.create({ commonName: 'rotating', passphrase: 'a passphrase' });
    writeFileSync(join(certDir, 'rotation.json'), '{}');
    const pair = createSelfSignedCertificate({ commonName: 'other' });
    for (const attempt of [
      () => store.create({ force: true }),
      () =>
        store.import({ certificate: pair.certificatePem, privateKeyPem: pair.privateKeyPem, force: true }),
      () => store.reencrypt({ passphrase: 'a passphrase' }, 'another passphrase'),
    ]) {
      const err = storeError(attempt);
      expect(err.code).toBe('ERR_ROTATION_UNDER_WAY');
      expect(err.message).toMatch(/run "cert rotate" to finish it first/);
    }
    expect(store.generations()).toEqual([first.generation]);
    expect(store.load(new Date(), { passphrase: 'a passphrase' }).certificate.subject).toBe('CN=rotating');
  });

  it('create and import wait for no one: while a rotation holds the lock they are refused naming its pid, and sweep nothing', () => {
    const store = new CertificateStore(certDir);
    const first = store.create({ commonName: 'locked' });
    const lock = acquireRotationLock(certDir);
    const temporary = join(certDir, '.rotation.json.0123456789ab.tmp');
    writeFileSync(temporary, '{'); // the rotation's journal write in progress
    try {
      const pair = createSelfSignedCertificate({ commonName: 'other' });
      for (const attempt of [
        () => store.create({ force: true }),
        () =>
          store.import({ certificate: pair.certificatePem, privateKeyPem: pair.privateKeyPem, force: true }),
      ])
        expect(attempt).toThrow(new RegExp(`a rotation by process ${process.pid} is under way`));
      expect(existsSync(temporary)).toBe(true);
      expect(store.generations()).toEqual([first.generation]);
    } finally {
      lock.release();
    }
    store.create({ commonName: 'after', force: true });
    expect(existsSync(temporary)).toBe(false);
  });

  it('removeLeftovers takes what a killed process left half-made, and nothing else', () => {
    const store = new CertificateStore(certDir);
    const gen = store.create().generation!;
    const left = [
      join(certDir, '.rotation.json.0123456789ab.tmp'),
      join(certDir, '.link-0123456789ab'),
      join(certDir, 'generations', '.tmp-0123456789ab'),
      join(certDir, 'generations', '.trash-0123456789ab'),
      join(certDir, 'generations', gen, '.partner.key-id.0123456789ab.tmp'),
    ];
    for (const path of left) {
      if (/\/\.(tmp|trash)-/.test(path)) mkdirSync(path);
      else writeFileSync(path, '');
    }
    writeFileSync(join(certDir, 'notes.tmp'), 'mine');
    expect(store.removeLeftovers().sort()).toEqual([...left].sort());
    expect(left.some((path) => existsSync(path))).toBe(false);
    expect(readFileSync(join(certDir, 'notes.tmp'), 'utf8')).toBe('mine');
    expect(store.load().generation).toBe(gen);
  });

  it('refuses a file copied over a link when it differs from the certificate in use, and says what to do', () => {
    const store = new CertificateStore(certDir);
    store.create({ commonName: 'in-use' });
    const other = parseCertificate(createSelfSignedCertificate({ commonName: 'dropped' }).certificatePem);
    const top = join(certDir, 'partner.crt.pem');
    writeFileSync(`${top}.new`, other.pem);
    // What a deployment tool does: a new file renamed over the old path.
    renameSync(`${top}.new`, top);
    const err = storeError(() => store.load());
    expect(err.code).toBe('ERR_STATE_DAMAGED');
    expect(err.path).toBe(top);
    expect(err.message).toMatch(/not the link to current\/partner\.crt\.pem.*cert import/);
  });

  it('a damaged current is a state error naming it, never a silent fallback to other files', () => {
    const store = new CertificateStore(certDir);
    store.create();
    const current = join(certDir, 'current');
    for (const [target, message] of [
      ['/etc', /not to a generation/],
      ['generations/../../elsewhere', /not to a generation/],
      ['generations/20990101T000000Z-000000000000', /does not exist/],
    ] as const) {
      rmSync(current);
      symlinkSync(target, current);
      const err = storeError(() => store.load());
      expect(err.code).toBe('ERR_STATE_DAMAGED');
      expect(err.message).toMatch(message);
    }
    rmSync(current);
    writeFileSync(current, 'generations/x');
    expect(storeError(() => store.load()).message).toMatch(/must be a symlink/);
  });

  it('cert reencrypt: a key file of the old KDF becomes a new generation at 600,000 iterations, same certificate and keyId', () => {
    const store = new CertificateStore(certDir);
    const pair = createSelfSignedCertificate({ commonName: 'old-kdf' });
    // node:crypto's own export uses OpenSSL's default PBKDF2 count (2,048): the format before this change.
    const weak = createPrivateKey(pair.privateKeyPem)
      .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'old-passphrase' })
      .toString();
    writeFirstLayout(certDir, pair);
    writeFileSync(join(certDir, 'partner.key.pem'), weak, { mode: 0o600 });
    expect(describeKeyEncryption(weak)).toMatchObject({ iterations: 2048, strong: false });
    const before = store.load(new Date(), { passphrase: 'old-passphrase' });
    expect(before.keyProtection).toMatchObject({ store: 'file', encryption: { iterations: 2048 } });

    // A copy of the weak generation, as a reencrypt killed after its switch would leave.
    const adopted = store.currentGeneration() ?? new GenerationLayout(certDir).adoptFirstLayout()!;
    cpSync(join(certDir, 'generations', adopted), join(certDir, 'generations', `${adopted}-2`), {
      recursive: true,
    });
    const after = store.reencrypt({ passphrase: 'old-passphrase' }, 'new-passphrase');
    const stored = readFileSync(join(certDir, 'partner.key.pem'), 'utf8');
    expect(describeKeyEncryption(stored)).toMatchObject({ iterations: 600_000, strong: true });
    expect(after.certificate.der.equals(before.certificate.der)).toBe(true);
    expect(readPrivateKey(stored, 'new-passphrase')).toBe(readPrivateKey(pair.privateKeyPem));
    expect(store.keyIdOf(after.generation!)).toBe(KEY_ID);
    expect(store.generations()).toEqual([after.generation]);
    expect(existsSync(join(certDir, 'partner.key.pem'))).toBe(true);
    expect(storeError(() => store.load(new Date(), { passphrase: 'old-passphrase' })).code).toBe(
      'ERR_WRONG_PASSWORD',
    );
  });
});
