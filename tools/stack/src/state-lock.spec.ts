/** The state directory's lock: one owner, refused while it lives, taken over once it is gone. */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lockStateDirectory, StateLockedError, StateLockFileError, STATE_LOCK_FILE } from './state-lock';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const fresh = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'certflow-lock-'));
  dirs.push(dir);
  return dir;
};
/** The pid of a process that has exited. */
const deadPid = (): number => spawnSync(process.execPath, ['-e', '0']).pid!;

describe('lockStateDirectory', () => {
  it('holds the pid; a second lock is refused naming it; release lets the next one in', () => {
    const dir = fresh();
    const lock = lockStateDirectory(dir);
    expect(readFileSync(join(dir, STATE_LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`);
    expect(readdirSync(dir)).toEqual([STATE_LOCK_FILE]);
    expect(() => lockStateDirectory(dir)).toThrow(StateLockedError);
    expect(() => lockStateDirectory(dir)).toThrow(`another stack (pid ${process.pid}) is running`);
    lock.release();
    expect(existsSync(join(dir, STATE_LOCK_FILE))).toBe(false);
    lockStateDirectory(dir).release();
  });

  it('refuses while a live process holds it (the parent of this test), and does not touch its lock', () => {
    const dir = fresh();
    writeFileSync(join(dir, STATE_LOCK_FILE), `${process.ppid}\n`);
    expect(() => lockStateDirectory(dir)).toThrow(`another stack (pid ${process.ppid}) is running`);
    expect(readFileSync(join(dir, STATE_LOCK_FILE), 'utf8')).toBe(`${process.ppid}\n`);
    expect(readdirSync(dir)).toEqual([STATE_LOCK_FILE]);
  });

  it('takes over the lock of a process that is gone, leaving no other file', () => {
    const dir = fresh();
    writeFileSync(join(dir, STATE_LOCK_FILE), `${deadPid()}\n`);
    const lock = lockStateDirectory(dir);
    expect(readFileSync(join(dir, STATE_LOCK_FILE), 'utf8')).toBe(`${process.pid}\n`);
    expect(readdirSync(dir)).toEqual([STATE_LOCK_FILE]);
    lock.release();
  });

  it('does not release a lock another process has taken since', () => {
    const dir = fresh();
    const lock = lockStateDirectory(dir);
    writeFileSync(join(dir, STATE_LOCK_FILE), `${process.ppid}\n`);
    lock.release();
    expect(readFileSync(join(dir, STATE_LOCK_FILE), 'utf8')).toBe(`${process.ppid}\n`);
  });

  it('stops, changing nothing, when a start died taking over a stale lock, or the lock is damaged', () => {
    const dir = fresh();
    const stale = deadPid();
    writeFileSync(join(dir, STATE_LOCK_FILE), `${stale}\n`);
    writeFileSync(join(dir, `${STATE_LOCK_FILE}.${stale}`), `${deadPid()}\n`);
    expect(() => lockStateDirectory(dir)).toThrow(/which is gone, .* by a start that died taking it over/);
    expect(readFileSync(join(dir, STATE_LOCK_FILE), 'utf8')).toBe(`${stale}\n`);

    const damaged = fresh();
    writeFileSync(join(damaged, STATE_LOCK_FILE), 'garbage');
    expect(() => lockStateDirectory(damaged)).toThrow(/stack\.lock is damaged/);
    expect(readdirSync(damaged)).toEqual([STATE_LOCK_FILE]);
  });

  it('stops naming the path and what to do, changing nothing, when the lock is a directory or a symbolic link', () => {
    const cases: [string, (path: string, dir: string) => void, string][] = [
      ['a directory', (path) => mkdirSync(path), "is a directory, not a stack's lock"],
      [
        'a dangling symbolic link',
        (path, dir) => symlinkSync(join(dir, 'nowhere'), path),
        'is a symbolic link',
      ],
      [
        'a symbolic link to a pid file',
        (path, dir) => {
          writeFileSync(join(dir, 'pid'), `${deadPid()}\n`);
          symlinkSync(join(dir, 'pid'), path);
        },
        'is a symbolic link',
      ],
    ];
    for (const [what, make, message] of cases) {
      const dir = fresh();
      const path = join(dir, STATE_LOCK_FILE);
      make(path, dir);
      const before = readdirSync(dir).sort();
      expect(() => lockStateDirectory(dir), what).toThrow(StateLockFileError);
      expect(() => lockStateDirectory(dir), what).toThrow(`${path} ${message}`);
      expect(() => lockStateDirectory(dir), what).toThrow(
        `if no stack runs on ${dir}, delete it and start again`,
      );
      expect(readdirSync(dir).sort(), what).toEqual(before);
      if (lstatSync(path).isSymbolicLink()) expect(readlinkSync(path)).toMatch(/nowhere|pid$/);
    }
  });

  it('stops naming the path, changing nothing, when this user cannot read the lock', () => {
    const dir = fresh();
    const path = join(dir, STATE_LOCK_FILE);
    writeFileSync(path, `${process.pid}\n`, { mode: 0o000 });
    chmodSync(dir, 0o777);
    chmodSync(join(dir, '..'), 0o755);
    // root reads any file: the attempt runs as an unprivileged user then.
    const asRoot = process.getuid?.() === 0;
    const script = `try { require(${JSON.stringify(join(__dirname, '..', 'dist', 'state-lock.js'))}).lockStateDirectory(${JSON.stringify(dir)}); console.log('taken') } catch (e) { console.log(e.name + ': ' + e.message) }`;
    const run = spawnSync(process.execPath, ['-e', script], {
      encoding: 'utf8',
      ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
    });
    expect(run.stdout).toContain(
      `StateLockFileError: cannot read ${path} (EACCES): make it readable by this user`,
    );
    expect(readdirSync(dir)).toEqual([STATE_LOCK_FILE]);
  });
});
