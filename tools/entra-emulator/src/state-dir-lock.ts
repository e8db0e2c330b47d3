/**
 * One emulator per state directory: `<stateDir>/emulator.lock` holds the pid of the process
 * whose emulator owns the directory, from before anything in it is read or written until that
 * emulator is closed. A second start on the same directory (another process, or the same one)
 * stops naming the owner's pid and changes nothing.
 *
 * The lock file only ever appears complete: it is written aside in full, then hard-linked into
 * place (link(2) fails when the name exists). A lock whose process is gone is taken over: the
 * taker first links its own file to `emulator.lock.<dead pid>` (exclusive), checks the lock
 * still names that pid, and replaces it with a rename, so the lock never disappears and two
 * takers never both win. Anything at the lock's name that is not a regular file (a directory,
 * a symbolic link, dangling or not) or that cannot be read stops start-up naming it.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  linkSync,
  lstatSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { EmulatorError } from './errors';

export const LOCK_FILE = 'emulator.lock';

export interface StateDirLock {
  /** Removes the lock if it is still the one this start took. */
  release(): void;
}

/** Identities (`dev:ino`) of the lock files this process holds now, to tell them from a stale lock naming a reused pid. */
const held = new Set<string>();

const identity = (s: { dev: number; ino: number }): string => `${s.dev}:${s.ino}`;
const code = (err: unknown): string | undefined => (err as NodeJS.ErrnoException).code;

/** Takes `<stateDir>/emulator.lock` (the directory must exist); throws ERR_STATE_LOCKED while a live emulator holds it. */
export function lockStateDirectory(stateDir: string): StateDirLock {
  const path = join(stateDir, LOCK_FILE);
  const mine = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.new`;
  try {
    writeFileSync(mine, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    throw cannotUse(mine, stateDir, err);
  }
  try {
    const mineId = identity(lstatSync(mine));
    const taken = (): StateDirLock => {
      held.add(mineId);
      return { release: () => release(path, mineId) };
    };
    for (let attempt = 0; attempt < 10; attempt++) {
      try {
        linkSync(mine, path);
        return taken();
      } catch (err) {
        if (code(err) !== 'EEXIST') throw cannotUse(path, stateDir, err);
      }
      const owner = readLock(path, stateDir);
      if (owner === undefined) continue; // released meanwhile
      if (alive(owner.pid, owner.id)) throw locked(stateDir, owner.pid);
      // The owner is gone: take over under `emulator.lock.<pid>`, which only one taker can create.
      const taking = `${path}.${owner.pid}`;
      try {
        linkSync(mine, taking);
      } catch (err) {
        if (code(err) !== 'EEXIST') throw cannotUse(taking, stateDir, err);
        const taker = readLock(taking, stateDir);
        if (taker === undefined) continue; // that takeover just ended
        if (alive(taker.pid, taker.id)) throw locked(stateDir, taker.pid);
        throw new EmulatorError(
          'ERR_STATE_LOCKED',
          `${path} was left by process ${owner.pid}, which is gone, and ${taking} by a start that died taking it over: ` +
            `if no emulator runs on ${stateDir}, delete both files and start again`,
        );
      }
      try {
        if (readLock(path, stateDir)?.pid === owner.pid) {
          renameSync(mine, path);
          return taken();
        }
      } finally {
        rmSync(taking, { force: true });
      }
    }
    throw new EmulatorError(
      'ERR_STATE_LOCKED',
      `could not take ${path}: emulators keep starting and stopping on ${stateDir}; try again`,
    );
  } finally {
    rmSync(mine, { force: true });
  }
}

/**
 * Best effort, as it runs while closing: a lock that cannot be removed stays behind, and the next
 * start takes it over (its process is gone, or is this one without holding it).
 */
function release(path: string, mineId: string): void {
  held.delete(mineId);
  try {
    if (identity(lstatSync(path)) === mineId) rmSync(path, { force: true });
  } catch {
    // gone already, or not removable: see above
  }
}

/** Whether the lock's pid is a running process holding it (this process only if one of its emulators holds this very file). */
function alive(pid: number, id: string): boolean {
  if (pid === process.pid) return held.has(id);
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return code(err) === 'EPERM';
  }
}

/** The pid in a lock file and the file's identity, or `undefined` when there is no such file. */
function readLock(path: string, stateDir: string): { pid: number; id: string } | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if (code(err) === 'ENOENT') return undefined;
    if (code(err) === 'ELOOP') throw notALock(path, stateDir, 'is a symbolic link');
    throw cannotUse(path, stateDir, err);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile())
      throw notALock(path, stateDir, stat.isDirectory() ? 'is a directory' : 'is not a regular file');
    const buffer = Buffer.alloc(32);
    const text = buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, 0)).toString('latin1');
    if (!/^[1-9]\d{0,9}\n?$/.test(text))
      throw notALock(path, stateDir, `holds ${JSON.stringify(text.slice(0, 20))} instead of a pid`);
    return { pid: Number(text.trim()), id: identity(stat) };
  } finally {
    closeSync(fd);
  }
}

function locked(stateDir: string, pid: number): EmulatorError {
  const who = pid === process.pid ? `this process (pid ${pid})` : `process ${pid}`;
  return new EmulatorError(
    'ERR_STATE_LOCKED',
    `an emulator of ${who} is running on the state directory ${stateDir}; nothing was changed. ` +
      `Stop it first (Ctrl+C where it runs, or kill ${pid}; a running stack owns its emulator), ` +
      `or give this one another state directory. If process ${pid} is not an emulator, delete ${join(stateDir, LOCK_FILE)}.`,
  );
}

function notALock(path: string, stateDir: string, problem: string): EmulatorError {
  return new EmulatorError(
    'ERR_STATE_LOCKED',
    `${path} ${problem}: the emulator's lock is a file holding a pid; nothing was changed. ` +
      `If no emulator runs on ${stateDir}, delete it and start again.`,
  );
}

function cannotUse(path: string, stateDir: string, err: unknown): EmulatorError {
  return new EmulatorError(
    'ERR_STATE_LOCKED',
    `cannot use the emulator's lock ${path} (${code(err) ?? (err as Error).message}); nothing was changed. ` +
      `Make ${stateDir} and the file readable and writable by this user, or, if no emulator runs there, delete the file.`,
    { cause: err },
  );
}
