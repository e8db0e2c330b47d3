/**
 * One stack per state directory: `<stateDir>/stack.lock` holds the pid of the stack that owns
 * the directory, from before anything in it is changed until the stack stops. A second start on
 * the same directory stops with the owner's pid and changes nothing.
 *
 * The lock file only ever appears complete (written aside, then hard-linked into place, which
 * fails when it exists). A lock left by a process that is gone is taken over: the taker first
 * holds `stack.lock.<dead pid>` (exclusive create), checks that the lock still names that pid,
 * and replaces it with a rename, so the lock file never disappears and two takers never both win.
 * Anything at the lock's name that is not a regular file holding a pid (a directory, a symbolic
 * link, dangling or not, a file this user cannot read, other text) stops the start naming it.
 */
import {
  closeSync,
  constants,
  fstatSync,
  linkSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';

export const STATE_LOCK_FILE = 'stack.lock';

/** Another stack (a live process) owns the state directory. */
export class StateLockedError extends Error {
  override readonly name = 'StateLockedError';
  constructor(
    readonly stateDir: string,
    readonly pid: number,
  ) {
    super(
      `another stack (pid ${pid}) is running on the state directory ${stateDir}: stop it first ` +
        `(Ctrl+C where it runs, or kill ${pid}), or give this one another --state-dir ` +
        `(if process ${pid} is not a certflow stack, delete ${join(stateDir, STATE_LOCK_FILE)})`,
    );
  }
}

/** The lock file is unusable (not a file holding a pid, or unreadable); nothing was changed. */
export class StateLockFileError extends Error {
  override readonly name = 'StateLockFileError';
}

export interface StateLock {
  /** Removes the lock if it is still this process's. */
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const code = (err: unknown): string | undefined => (err as NodeJS.ErrnoException).code;

function notALock(path: string, what: string): StateLockFileError {
  return new StateLockFileError(
    `${path} is ${what}, not a stack's lock (a file holding a pid): if no stack runs on ${dirname(path)}, delete it and start again`,
  );
}

/** The pid in a lock file (never following a symbolic link), or undefined when there is none. */
function ownerOf(path: string): number | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if (code(err) === 'ENOENT') return undefined;
    if (code(err) === 'ELOOP') throw notALock(path, 'a symbolic link');
    throw new StateLockFileError(
      `cannot read ${path} (${code(err) ?? (err as Error).message}): make it readable by this user, ` +
        `or, if no stack runs on ${dirname(path)}, delete it and start again`,
    );
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw notALock(path, stat.isDirectory() ? 'a directory' : 'not a regular file');
    const buffer = Buffer.alloc(32);
    const text = buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, 0)).toString('latin1');
    if (!/^[1-9]\d{0,9}\n?$/.test(text))
      throw notALock(path, `damaged (${JSON.stringify(text.slice(0, 20))})`);
    return Number(text.trim());
  } finally {
    closeSync(fd);
  }
}

const exists = (err: unknown): boolean => code(err) === 'EEXIST';

/** Takes the state directory's lock (the directory must exist); throws StateLockedError when a live process holds it. */
export function lockStateDirectory(stateDir: string): StateLock {
  const path = join(stateDir, STATE_LOCK_FILE);
  const mine = `${path}.${process.pid}.new`;
  writeFileSync(mine, `${process.pid}\n`, { mode: 0o600 });
  const release = (): void => {
    if (ownerOf(path) === process.pid) rmSync(path, { force: true });
  };
  try {
    for (let attempt = 0; attempt < 10; attempt++) {
      try {
        linkSync(mine, path);
        return { release };
      } catch (err) {
        if (!exists(err)) throw err;
      }
      const owner = ownerOf(path);
      if (owner === undefined) continue; // released meanwhile
      if (owner === process.pid || alive(owner)) throw new StateLockedError(stateDir, owner);
      const taking = `${path}.${owner}`;
      try {
        writeFileSync(taking, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      } catch (err) {
        if (!exists(err)) throw err;
        const taker = ownerOf(taking);
        if (taker !== undefined && alive(taker)) throw new StateLockedError(stateDir, taker);
        throw new StateLockFileError(
          `${path} was left by process ${owner}, which is gone, and ${taking} by a start that died taking it over: ` +
            `if no stack runs on ${stateDir}, delete both files`,
        );
      }
      try {
        if (ownerOf(path) === owner) {
          renameSync(mine, path);
          return { release };
        }
      } finally {
        rmSync(taking, { force: true });
      }
    }
    throw new Error(`could not take ${path}: it keeps changing hands`);
  } finally {
    rmSync(mine, { force: true });
  }
}
