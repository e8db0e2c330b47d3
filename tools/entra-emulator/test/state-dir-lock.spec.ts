/**
 * One emulator per state directory (emulator.lock): a second emulator — the real program in
 * another process, or another start in this one — stops naming the owner's pid and leaves
 * emulator.json and emulator-state.json untouched; a lock left by a killed emulator is taken
 * over; racing processes never both win; anything else at the lock's name stops start-up naming it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { runCli } from '../src/cli';
import { startEmulator } from '../src/emulator';
import { emulatorInfoPath } from '../src/emulator-info';
import { EmulatorError } from '../src/errors';
import { LOCK_FILE } from '../src/state-dir-lock';
import { statePath } from '../src/state-store';
import { removeDir, tempStateDir } from '../src/emulator.test-helpers';

const DIST = join(__dirname, '..', 'dist');

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function newDir(): string {
  const dir = tempStateDir();
  cleanups.push(() => removeDir(dir));
  return dir;
}

function child(args: string[]): ChildProcessWithoutNullStreams {
  const proc = spawn(process.execPath, args, { stdio: 'pipe' });
  cleanups.push(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  return proc;
}

function firstLine(proc: ChildProcessWithoutNullStreams): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    proc.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
    });
    proc.on('exit', (code) => reject(new Error(`child exited (${code}) before a line: ${err}`)));
  });
}

/** The real program (`npm run emulator`), started on `dir`; resolves once it listens. */
async function programOn(dir: string): Promise<ChildProcessWithoutNullStreams> {
  expect(existsSync(join(DIST, 'main.js')), "run 'npx nx build entra-emulator' (nx test does)").toBe(true);
  const proc = child([join(DIST, 'main.js'), '--state-dir', dir]);
  expect(JSON.parse(await firstLine(proc))).toMatchObject({ event: 'listening' });
  return proc;
}

/** The pid of a process that has ended. */
function deadPid(): number {
  const pid = Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']));
  expect(() => process.kill(pid, 0)).toThrow();
  return pid;
}

function snapshot(dir: string) {
  const files = [statePath(dir), emulatorInfoPath(dir)];
  return files.map((f) => ({ f, bytes: readFileSync(f).toString('base64'), mtime: statSync(f).mtimeMs }));
}

const lockPath = (dir: string) => join(dir, LOCK_FILE);
const lockedFailure = async (dir: string): Promise<EmulatorError> => {
  const failure = await startEmulator({ stateDir: dir }).catch((err: unknown) => err);
  expect(failure).toBeInstanceOf(EmulatorError);
  expect((failure as EmulatorError).code).toBe('ERR_STATE_LOCKED');
  return failure as EmulatorError;
};

describe('one emulator per state directory', () => {
  it('a second emulator beside the running program stops naming its pid and changes nothing; stopping it frees the directory', async () => {
    const dir = newDir();
    const program = await programOn(dir);
    expect(readFileSync(lockPath(dir), 'utf8')).toBe(`${program.pid}\n`);
    const before = snapshot(dir);

    const stderr: string[] = [];
    const code = await runCli(['--state-dir', dir], {
      stdout: () => {},
      stderr: (line) => stderr.push(line),
      onShutdown: () => {},
    });
    expect(code).toBe(1);
    expect(stderr.join('\n')).toContain(
      `an emulator of process ${program.pid} is running on the state directory ${dir}`,
    );
    expect(stderr.join('\n')).toContain(`kill ${program.pid}`);
    expect((await lockedFailure(dir)).message).toContain(`process ${program.pid}`);
    expect(snapshot(dir)).toEqual(before);
    expect(readFileSync(lockPath(dir), 'utf8')).toBe(`${program.pid}\n`);

    program.kill('SIGTERM');
    await once(program, 'exit');
    expect(existsSync(lockPath(dir))).toBe(false);
    const next = await startEmulator({ stateDir: dir });
    await next.close();
  }, 30_000);

  it('a second start in the same process is refused too; close releases the lock', async () => {
    const dir = newDir();
    const first = await startEmulator({ stateDir: dir });
    const before = snapshot(dir);
    expect((await lockedFailure(dir)).message).toContain(`this process (pid ${process.pid})`);
    expect(snapshot(dir)).toEqual(before);
    await first.close();
    expect(existsSync(lockPath(dir))).toBe(false);
    const second = await startEmulator({ stateDir: dir });
    expect(second.tenantId).toBe(first.tenantId);
    await second.close();
  });

  it('takes over the lock of a killed emulator, and one naming this pid that this process does not hold (pid reused)', async () => {
    const dir = newDir();
    const program = await programOn(dir);
    const tenantId = JSON.parse(readFileSync(emulatorInfoPath(dir), 'utf8')).tenantId as string;
    program.kill('SIGKILL');
    await once(program, 'exit');
    expect(readFileSync(lockPath(dir), 'utf8')).toBe(`${program.pid}\n`);

    const taken = await startEmulator({ stateDir: dir });
    expect(taken.tenantId).toBe(tenantId);
    expect(readFileSync(lockPath(dir), 'utf8')).toBe(`${process.pid}\n`);
    await taken.close();

    writeFileSync(lockPath(dir), `${process.pid}\n`);
    const again = await startEmulator({ stateDir: dir });
    await again.close();
    expect(existsSync(lockPath(dir))).toBe(false);
  }, 30_000);

  it.each([
    ['no lock', false],
    ["a dead process's lock", true],
  ])(
    'processes racing for the directory (%s): exactly one wins, the others name it',
    async (_name, stale) => {
      const dir = newDir();
      if (stale) writeFileSync(lockPath(dir), `${deadPid()}\n`);
      const racer = `
      const { lockStateDirectory } = require(process.argv[1]);
      process.stdout.write('ready\\n');
      process.stdin.once('data', () => {
        let said;
        try { lockStateDirectory(process.argv[2]); said = 'won'; } catch (e) { said = e.code + ' ' + e.message; }
        process.stdout.write(said + '\\n');
      });
    `;
      const racers = Array.from({ length: 6 }, () =>
        child(['-e', racer, join(DIST, 'state-dir-lock.js'), dir]),
      );
      const ready = racers.map((r) => firstLine(r));
      expect(await Promise.all(ready)).toEqual(racers.map(() => 'ready'));
      const said = racers.map(
        (r) =>
          new Promise<string>((resolve) => {
            let out = '';
            r.stdout.on('data', (d: string) => {
              out += d;
              if (out.endsWith('\n')) resolve(out.trim());
            });
          }),
      );
      for (const r of racers) r.stdin.write('go\n');
      const results = await Promise.all(said);
      const winners = racers.filter((_, i) => results[i] === 'won');
      expect(winners, results.join('\n')).toHaveLength(1);
      const winner = winners[0]!.pid!;
      for (const result of results.filter((r) => r !== 'won'))
        expect(result).toContain(`ERR_STATE_LOCKED an emulator of process ${winner} is running`);
      expect(readFileSync(lockPath(dir), 'utf8')).toBe(`${winner}\n`);
    },
    30_000,
  );

  it.each([
    ['a directory', (p: string) => mkdirSync(p), 'is a directory'],
    [
      'a dangling symbolic link',
      (p: string) => symlinkSync('/srv/nowhere/emulator.lock', p),
      'is a symbolic link',
    ],
    ['a symbolic link to a pid file', (p: string) => symlinkSync(`${p}.target`, p), 'is a symbolic link'],
    ['a FIFO', (p: string) => execFileSync('mkfifo', [p]), 'is not a regular file'],
    ['not a pid', (p: string) => writeFileSync(p, 'hello'), 'holds "hello" instead of a pid'],
  ])(
    '%s at the lock name stops start-up naming it and what to do, changing nothing',
    async (_n, make, what) => {
      const dir = newDir();
      writeFileSync(`${lockPath(dir)}.target`, `${deadPid()}\n`);
      make(lockPath(dir));
      const failure = await lockedFailure(dir);
      expect(failure.message).toContain(
        `${lockPath(dir)} ${what}: the emulator's lock is a file holding a pid`,
      );
      expect(failure.message).toContain(`If no emulator runs on ${dir}, delete it and start again.`);
      expect(existsSync(statePath(dir))).toBe(false);
      expect(existsSync(emulatorInfoPath(dir))).toBe(false);
      expect(readFileSync(`${lockPath(dir)}.target`, 'utf8')).toMatch(/^\d+\n$/);
    },
  );

  it('a lock this user cannot read stops start-up naming it (run as nobody when the tests run as root)', () => {
    const dir = newDir();
    chmodSync(dir, 0o777);
    writeFileSync(lockPath(dir), '4242\n', { mode: 0o000 });
    const asOther = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const said = execFileSync(
      process.execPath,
      [
        '-e',
        'try { require(process.argv[1]).lockStateDirectory(process.argv[2]); console.log("taken") } catch (e) { console.log(e.code + " " + e.message) }',
        join(DIST, 'state-dir-lock.js'),
        dir,
      ],
      { encoding: 'utf8', ...asOther },
    );
    expect(said).toContain(`ERR_STATE_LOCKED cannot use the emulator's lock ${lockPath(dir)} (EACCES)`);
    expect(said).toContain('if no emulator runs there, delete the file');
    expect(readdirSync(dir)).toEqual([LOCK_FILE]);
  });
});
