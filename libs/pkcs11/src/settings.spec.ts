import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '@certflow/testing';
import { Pkcs11Error, parsePkcs11Uri, resolvePkcs11Settings, type Pkcs11Uri } from './index';
import { PIN_FILE_MAX_BYTES } from './settings';

const dirs: { remove(): void }[] = [];
afterEach(() => dirs.splice(0).forEach((d) => d.remove()));

function pinFile(content: string, mode = 0o600): string {
  const dir = tempDir('pkcs11-pin-');
  dirs.push(dir);
  const path = join(dir.path, 'pin');
  writeFileSync(path, content);
  chmodSync(path, mode);
  return path;
}

function refusal(uri: Pkcs11Uri, env: Record<string, string> = {}): Pkcs11Error {
  try {
    resolvePkcs11Settings(uri, env);
  } catch (err) {
    if (err instanceof Pkcs11Error) return err;
    throw err;
  }
  throw new Error('accepted');
}

const MODULE = '/srv/partner/libpkcs11.so';

describe('resolvePkcs11Settings', () => {
  it('takes the module and PIN from the environment when the URI names neither', () => {
    expect(resolvePkcs11Settings({}, { PARTNER_PKCS11_MODULE: MODULE, PARTNER_PKCS11_PIN: '1234' })).toEqual({
      modulePath: MODULE,
      pin: '1234',
    });
  });

  it("prefers the URI's module-path and pin-source (file: URI or absolute path), reading the first line", () => {
    const path = pinFile('4321\r\nsecond line\n');
    const env = { PARTNER_PKCS11_MODULE: '/srv/other.so', PARTNER_PKCS11_PIN: 'env-pin' };
    expect(resolvePkcs11Settings({ modulePath: MODULE, pinSource: `file:${path}` }, env)).toEqual({
      modulePath: MODULE,
      pin: '4321',
    });
    expect(resolvePkcs11Settings({ pinSource: path }, env).pin).toBe('4321');
    expect(resolvePkcs11Settings({ pinSource: `file://${path}` }, env).pin).toBe('4321');
    expect(resolvePkcs11Settings({ pinSource: pinFile('no-newline') }, env).pin).toBe('no-newline');
  });

  it('refuses a PIN file readable by group or others, naming the path and mode', () => {
    for (const mode of [0o640, 0o604, 0o644]) {
      const path = pinFile('1234\n', mode);
      const err = refusal({ pinSource: path }, { PARTNER_PKCS11_MODULE: MODULE });
      expect(err.code).toBe('ERR_PKCS11_PIN_MISSING');
      expect(err.message).toContain(
        `the PIN file '${path}' (pin-source) is readable by others (mode 0${mode.toString(8)})`,
      );
      expect(err.message).toContain('chmod 600');
      expect(err.message).not.toContain('1234');
    }
  });

  it.each<[string, Pkcs11Uri, Record<string, string>, string, string]>([
    [
      'no module',
      {},
      { PARTNER_PKCS11_PIN: '1' },
      'ERR_PKCS11_MODULE',
      "set PARTNER_PKCS11_MODULE or the URI's module-path",
    ],
    [
      'module-name only',
      { moduleName: 'softhsm2' },
      {},
      'ERR_PKCS11_MODULE',
      'module-name=softhsm2 is not looked up',
    ],
    [
      'relative module',
      {},
      { PARTNER_PKCS11_MODULE: 'libsofthsm2.so' },
      'ERR_PKCS11_MODULE',
      'PARTNER_PKCS11_MODULE must be an absolute path',
    ],
    [
      'relative module-path',
      { modulePath: 'lib.so' },
      {},
      'ERR_PKCS11_MODULE',
      "the URI's module-path must be an absolute path",
    ],
    [
      'no PIN',
      {},
      { PARTNER_PKCS11_MODULE: MODULE },
      'ERR_PKCS11_PIN_MISSING',
      "set PARTNER_PKCS11_PIN, or the URI's pin-source",
    ],
    [
      'empty PIN variable',
      {},
      { PARTNER_PKCS11_MODULE: MODULE, PARTNER_PKCS11_PIN: '' },
      'ERR_PKCS11_PIN_MISSING',
      'set PARTNER_PKCS11_PIN',
    ],
    [
      'relative pin-source',
      { pinSource: 'pin.txt' },
      { PARTNER_PKCS11_MODULE: MODULE },
      'ERR_PKCS11_URI',
      'must be an absolute path or a file: URI',
    ],
    [
      'command pin-source',
      { pinSource: '|/bin/get-pin' },
      { PARTNER_PKCS11_MODULE: MODULE },
      'ERR_PKCS11_URI',
      'must be an absolute path or a file: URI',
    ],
    [
      'remote file URI',
      { pinSource: 'file://host/pin' },
      { PARTNER_PKCS11_MODULE: MODULE },
      'ERR_PKCS11_URI',
      'is not a local file URI',
    ],
    [
      'missing PIN file',
      { pinSource: '/srv/partner/no-pin' },
      { PARTNER_PKCS11_MODULE: MODULE },
      'ERR_PKCS11_PIN_MISSING',
      "the PIN file '/srv/partner/no-pin' (pin-source) cannot be read: ENOENT",
    ],
  ])('%s', (_, uri, env, code, message) => {
    const err = refusal(uri, env);
    expect(err.code).toBe(code);
    expect(err.message).toContain(message);
  });

  it('refuses what is not a small regular file without reading it: a device, a FIFO, a directory, a huge file', () => {
    const env = { PARTNER_PKCS11_MODULE: MODULE };
    const dir = tempDir('pkcs11-pin-');
    dirs.push(dir);
    const fifo = join(dir.path, 'fifo');
    execFileSync('mkfifo', ['-m', '600', fifo]); // read whole, it would block forever
    const sub = join(dir.path, 'dir');
    mkdirSync(sub, { mode: 0o700 });
    for (const path of ['/dev/zero', fifo, sub]) {
      const err = refusal({ pinSource: path }, env);
      expect(err.code).toBe('ERR_PKCS11_PIN_MISSING');
      expect(err.message).toContain(`the PIN file '${path}' (pin-source) is not a regular file`);
    }
    const huge = pinFile(`1234\n${'x'.repeat(PIN_FILE_MAX_BYTES)}`);
    expect(refusal({ pinSource: huge }, env).message).toContain(
      `is ${PIN_FILE_MAX_BYTES + 5} bytes long; a PIN file holds one line (at most ${PIN_FILE_MAX_BYTES} bytes)`,
    );
    expect(
      resolvePkcs11Settings({ pinSource: pinFile(`${'7'.repeat(PIN_FILE_MAX_BYTES - 1)}\n`) }, env).pin,
    ).toHaveLength(PIN_FILE_MAX_BYTES - 1);
  });

  it('follows a symbolic link and checks the file it leads to', () => {
    const env = { PARTNER_PKCS11_MODULE: MODULE };
    const link = (target: string) => {
      const path = `${target}-link`;
      symlinkSync(target, path);
      return path;
    };
    expect(resolvePkcs11Settings({ pinSource: link(pinFile('1234\n')) }, env).pin).toBe('1234');
    expect(refusal({ pinSource: link(pinFile('1234\n', 0o644)) }, env).message).toContain(
      'is readable by others (mode 0644)',
    );
  });

  it('decodes pin-source once: what the URI decoded is the path, never decoded again', () => {
    const env = { PARTNER_PKCS11_MODULE: MODULE };
    const dir = tempDir('pkcs11-pin-');
    dirs.push(dir);
    // pin-source=file:<dir>/%2541 in the URI is the file named "%41", not "A"
    writeFileSync(join(dir.path, '%41'), 'percent\n', { mode: 0o600 });
    writeFileSync(join(dir.path, 'A'), 'letter\n', { mode: 0o600 });
    const uri = parsePkcs11Uri(`pkcs11:object=k?pin-source=file:${dir.path}/%2541`);
    expect(uri.pinSource).toBe(`file:${dir.path}/%41`);
    expect(resolvePkcs11Settings(uri, env).pin).toBe('percent');
    expect(resolvePkcs11Settings({ pinSource: `file://localhost${dir.path}/A` }, env).pin).toBe('letter');
  });

  it.each([
    ['file:/srv/partner/pin?x=1', "contains '?'"],
    ['file:/srv/partner/pin#frag', "contains '#'"],
    ['/srv/partner/pin?', "contains '?'"],
    ['/srv/partner/pin\nx', 'contains a control character'],
  ])('refuses a pin-source it cannot read unambiguously: %j', (pinSource, reason) => {
    const err = refusal({ pinSource }, { PARTNER_PKCS11_MODULE: MODULE });
    expect(err.code).toBe('ERR_PKCS11_URI');
    expect(err.message).toContain(reason);
    expect(err.message).not.toContain('\n');
  });

  it('refuses a PIN file whose first line is empty', () => {
    const err = refusal({ pinSource: pinFile('\n1234\n') }, { PARTNER_PKCS11_MODULE: MODULE });
    expect(err.code).toBe('ERR_PKCS11_PIN_MISSING');
    expect(err.message).toContain('has an empty first line');
  });
});
