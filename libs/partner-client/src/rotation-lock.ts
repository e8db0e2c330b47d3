/**
 * One rotation at a time per certificate directory: `<certDir>/rotation.lock`, created with
 * O_EXCL, holds the pid and the start time of the process that rotates. The start time tells a
 * live owner from a process that got the same pid later (Linux: /proc/<pid>/stat).
 *
 * A lock whose process is gone is stale (a rotation killed half-way) and is taken over: the
 * taker first creates `rotation.lock.<dead pid>` (O_EXCL, so only one taker wins), checks that
 * the lock still names the dead process, deletes it and creates its own. A live owner is an
 * error naming its pid. An empty lock (its writer died between creating and writing it, a
 * window of microseconds) counts as stale once it is a few seconds old.
 */
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

export const ROTATION_LOCK_FILE = 'rotation.lock';
/** An empty lock older than this is one whose writer died before writing it. */
const EMPTY_LOCK_STALE_MS = 5_000;
/** Two start times of one process, measured two ways, differ by less than this. */
const START_TIME_TOLERANCE_MS = 2_000;

export class RotationLockError extends Error {
  override readonly name = 'RotationLockError';
  constructor(
    message: string,
    readonly path: string,
    /** The pid of the rotation that holds the lock, when one does. */
    readonly pid?: number,
  ) {
    super(message);
  }
}

export interface RotationLock {
  readonly path: string;
  /** Deletes the lock if it is still this one. Idempotent. */
  release(): void;
}

interface Owner {
  pid: number;
  /** Epoch ms the owning process started; undefined when the lock does not say. */
  startedAt: number | undefined;
}

const code = (err: unknown): string | undefined => (err as NodeJS.ErrnoException).code;

/** Locks held by this process, by path: a second rotation in the same process is refused too. */
const held = new Set<string>();

/** When a process started (epoch ms), from /proc on Linux; undefined where that cannot be read. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime, in clock ticks since boot) counts from after the `(comm)` field.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]);
    const btime = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1];
    if (!Number.isFinite(ticks) || btime === undefined) return undefined;
    // USER_HZ is 100 on every Linux architecture Node runs on.
    return Number(btime) * 1000 + ticks * 10;
  } catch {
    return undefined;
  }
}

function ownStartTime(): number {
  return processStartTime(process.pid) ?? Date.now() - Math.round(process.uptime() * 1000);
}

function isAlive(owner: Owner, path: string): boolean {
  if (owner.pid === process.pid) return held.has(path);
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if (code(err) !== 'EPERM') return false;
  }
  if (owner.startedAt === undefined) return true;
  const started = processStartTime(owner.pid);
  return started === undefined || Math.abs(started - owner.startedAt) < START_TIME_TOLERANCE_MS;
}

type LockContent =
  | { kind: 'none' }
  /** Created but not written yet: `stale` once its writer has clearly died. */
  | { kind: 'empty'; stale: boolean }
  | { kind: 'owner'; owner: Owner };

function readLock(path: string): LockContent {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if (code(err) === 'ENOENT') return { kind: 'none' };
    throw new RotationLockError(
      `cannot read the rotation lock ${path} (${code(err) ?? (err as Error).message}): if no rotation runs on this directory, delete it`,
      path,
    );
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile())
      throw new RotationLockError(
        `${path} is not a file: if no rotation runs on this directory, delete it`,
        path,
      );
    const buffer = Buffer.alloc(256);
    const text = buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, 0)).toString('utf8');
    if (text === '') return { kind: 'empty', stale: Date.now() - stat.mtimeMs > EMPTY_LOCK_STALE_MS };
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const { pid, startedAt } = (parsed ?? {}) as { pid?: unknown; startedAt?: unknown };
    if (
      !Number.isInteger(pid) ||
      (pid as number) < 1 ||
      (startedAt !== undefined && typeof startedAt !== 'string')
    )
      throw new RotationLockError(
        `${path} does not hold a pid and a start time (${JSON.stringify(text.slice(0, 40))}): if no rotation runs on this directory, delete it`,
        path,
      );
    const time = startedAt === undefined ? undefined : Date.parse(startedAt);
    return {
      kind: 'owner',
      owner: { pid: pid as number, startedAt: Number.isFinite(time) ? time : undefined },
    };
  } finally {
    closeSync(fd);
  }
}

const sameLock = (a: LockContent, b: LockContent): boolean =>
  a.kind === b.kind &&
  (a.kind !== 'owner' ||
    (b.kind === 'owner' && a.owner.pid === b.owner.pid && a.owner.startedAt === b.owner.startedAt));

function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function createExclusive(path: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
  } catch (err) {
    if (code(err) === 'EEXIST') return false;
    throw new RotationLockError(
      `cannot create the rotation lock ${path} (${code(err) ?? (err as Error).message})`,
      path,
    );
  }
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Takes `<directory>/rotation.lock` (the directory must exist). Throws RotationLockError naming
 * the pid while another rotation runs; a stale lock is taken over and `log` says so.
 */
export function acquireRotationLock(
  directory: string,
  log: (message: string) => void = () => {},
): RotationLock {
  const path = join(directory, ROTATION_LOCK_FILE);
  const content = `${JSON.stringify({ pid: process.pid, startedAt: new Date(ownStartTime()).toISOString() })}\n`;
  const identity = (): string | undefined => {
    try {
      const s = statSync(path);
      return `${s.dev}:${s.ino}`;
    } catch {
      return undefined;
    }
  };
  for (let attempt = 0; attempt < 20; attempt++) {
    if (createExclusive(path, content)) {
      held.add(path);
      const mine = identity();
      let released = false;
      return {
        path,
        release() {
          if (released) return;
          released = true;
          held.delete(path);
          if (identity() === mine) rmSync(path, { force: true });
        },
      };
    }
    const found = readLock(path);
    if (found.kind === 'none') continue; // released meanwhile
    if (found.kind === 'empty' && !found.stale) {
      pause(50);
      continue;
    }
    if (found.kind === 'owner' && isAlive(found.owner, path))
      throw new RotationLockError(
        `a rotation by process ${found.owner.pid} is under way on ${directory}; nothing was changed. Wait for it to end, or stop it (kill ${found.owner.pid}); if process ${found.owner.pid} is not a rotation, delete ${path}`,
        path,
        found.owner.pid,
      );
    // Stale: only the taker that creates rotation.lock.<dead pid> may delete it.
    const deadPid = found.kind === 'owner' ? found.owner.pid : 0;
    const taking = `${path}.${deadPid}`;
    if (!createExclusive(taking, content)) {
      const taker = readLock(taking);
      if (taker.kind === 'owner' && !isAlive(taker.owner, taking)) rmSync(taking, { force: true });
      else if (taker.kind === 'empty' && taker.stale) rmSync(taking, { force: true });
      else pause(50);
      continue;
    }
    try {
      if (sameLock(readLock(path), found)) {
        rmSync(path, { force: true });
        log(
          deadPid
            ? `took over the rotation lock of process ${deadPid}, which is gone (a rotation that was killed: this one finishes or undoes it)`
            : 'took over an empty rotation lock left by a rotation killed as it started',
        );
      }
    } finally {
      rmSync(taking, { force: true });
    }
  }
  throw new RotationLockError(
    `could not take ${path}: rotations keep starting on ${directory}; try again`,
    path,
  );
}
