/**
 * Durable state: a process writing emulator-state.json in a tight loop is killed with SIGKILL at
 * random moments, many times; every time the file must parse and pass the start-up checks, and the
 * emulator must start on it. A damaged file or an unknown `version` stops start-up naming the file
 * and leaves it byte-for-byte as it was.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEmulator } from '../src/emulator';
import { emulatorInfoPath } from '../src/emulator-info';
import { EmulatorError } from '../src/errors';
import { loadState, statePath } from '../src/state-store';
import { removeDir, tempStateDir } from '../src/emulator.test-helpers';

const DIST_STATE_STORE = join(__dirname, '..', 'dist', 'state-store.js');

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function newDir(): string {
  const dir = tempStateDir();
  cleanups.push(() => removeDir(dir));
  return dir;
}

/**
 * The child: the built state store (`dist/state-store.js`, the code `npm run emulator` runs)
 * saving a large, valid, ever-changing state as fast as it can. It prints "writing" once it has
 * saved at least once, so kills land among writes.
 */
const WRITER = `
const { randomUUID } = require('node:crypto');
const { loadState, saveState } = require(process.argv[1]);
const dir = process.argv[2];
const state = loadState(dir);
const template = state.applications[0];
for (let i = state.applications.length; i < 1501; i++) state.applications.push({ ...template, id: randomUUID(), appId: randomUUID(), displayName: 'filler ' + i + ' ' + 'x'.repeat(200) });
let n = 0;
for (;;) {
  state.applications[1].displayName = 'write ' + n++;
  saveState(dir, state);
  if (n === 1) process.stdout.write('writing\\n');
}
`;

function killWriterAtRandomMoment(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', WRITER, DIST_STATE_STORE, dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout.once('data', () => setTimeout(() => child.kill('SIGKILL'), Math.random() * 150));
    child.on('error', reject);
    child.on('exit', (_code, signal) =>
      signal === 'SIGKILL' ? resolve() : reject(new Error(`writer ended without SIGKILL: ${stderr}`)),
    );
  });
}

describe('durable state', () => {
  it('emulator-state.json always parses and start-up works after kill -9 in the middle of writes', async () => {
    expect(
      existsSync(DIST_STATE_STORE),
      `${DIST_STATE_STORE} is missing: run 'npx nx build entra-emulator' (nx test does)`,
    ).toBe(true);
    const dir = newDir();
    const first = await startEmulator({ stateDir: dir });
    const tenantId = first.tenantId;
    await first.close();

    const seen = new Set<string>();
    for (let round = 0; round < 25; round++) {
      await killWriterAtRandomMoment(dir);
      const state = loadState(dir); // JSON.parse + every start-up check; throws ERR_STATE_DAMAGED otherwise
      expect(state?.tenant.id).toBe(tenantId);
      expect(state?.applications.length).toBe(1501);
      seen.add(state!.applications[1]!.displayName);
      if (round % 8 === 7) await (await startEmulator({ stateDir: dir })).close();
    }
    // The kills landed at different points of the write loop, not always before the first write.
    expect(seen.size).toBeGreaterThan(5);
    const last = await startEmulator({ stateDir: dir });
    cleanups.push(() => last.close());
    expect(last.tenantId).toBe(tenantId);
  }, 120_000);

  it.each([
    [
      'an unknown version',
      (valid: Record<string, unknown>) => JSON.stringify({ ...valid, version: 99 }, null, 2),
      'state.version must be 1',
    ],
    [
      'a truncated file',
      (valid: Record<string, unknown>) => JSON.stringify(valid).slice(0, 500),
      'not valid JSON',
    ],
    ['bytes that are not UTF-8 JSON', () => '\u0000\u00ff garbage', 'not valid JSON'],
  ])(
    'stops start-up on %s, naming the file, and leaves it byte-for-byte untouched',
    async (_name, damage, why) => {
      const dir = newDir();
      await (await startEmulator({ stateDir: dir })).close();
      const valid = JSON.parse(readFileSync(statePath(dir), 'utf8')) as Record<string, unknown>;
      writeFileSync(statePath(dir), damage(valid));
      const before = readFileSync(statePath(dir));
      const mtimeBefore = statSync(statePath(dir)).mtimeMs;
      const infoBefore = readFileSync(emulatorInfoPath(dir));

      const failure = await startEmulator({ stateDir: dir }).catch((err: unknown) => err);
      expect(failure).toBeInstanceOf(EmulatorError);
      expect((failure as EmulatorError).code).toBe('ERR_STATE_DAMAGED');
      expect((failure as Error).message).toContain(statePath(dir));
      expect((failure as Error).message).toContain(why);
      expect(readFileSync(statePath(dir)).equals(before)).toBe(true);
      expect(statSync(statePath(dir)).mtimeMs).toBe(mtimeBefore);
      expect(readFileSync(emulatorInfoPath(dir)).equals(infoBefore)).toBe(true);
    },
  );
});
