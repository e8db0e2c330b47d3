import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { checkClockOffset, ClockError } from './offset.js';

/** What judges time: the real time shifted by `offsetMs`. */
export interface Clock {
  now(): Date;
  nowMs(): number;
  readonly offsetMs: number;
}

/** The real time. */
export const systemClock: Clock = Object.freeze({
  now: () => new Date(),
  nowMs: () => Date.now(),
  offsetMs: 0,
});

/** A clock `offsetMs` ahead of (or, negative, behind) the real time; `set()` moves it in this process. */
export class OffsetClock implements Clock {
  #offsetMs: number;

  constructor(offsetMs = 0) {
    this.#offsetMs = checkClockOffset(offsetMs);
  }

  get offsetMs(): number {
    return this.#offsetMs;
  }

  set(offsetMs: number): void {
    this.#offsetMs = checkClockOffset(offsetMs);
  }

  nowMs(): number {
    return Date.now() + this.#offsetMs;
  }

  now(): Date {
    return new Date(this.nowMs());
  }
}

/**
 * Writes `{"offsetMs": …, "setAt": "<real time>"}` to `path`, mode 0600, atomically: a reader sees
 * the old file or the new one, never a part of it.
 */
export function writeClockFile(path: string, offsetMs: number): void {
  const content = `${JSON.stringify({ offsetMs: checkClockOffset(offsetMs), setAt: new Date().toISOString() })}\n`;
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(temporary, content, { mode: 0o600, flag: 'wx' });
    renameSync(temporary, path);
  } catch (err) {
    rmSync(temporary, { force: true });
    throw new ClockError('ERR_CLOCK_FILE', `clock file ${path}: cannot write it (${(err as Error).message})`);
  }
}

/** A clock file is a few dozen bytes; anything larger is not one. */
export const CLOCK_FILE_MAX_BYTES = 4096;

/**
 * The offset in a clock file; ClockError ERR_CLOCK_FILE names the path and what is wrong with it.
 * Only a regular file of at most CLOCK_FILE_MAX_BYTES is read, never through a symbolic link and
 * never waiting: a FIFO or a link to /dev/zero put in its place is refused at once, it cannot
 * block or fill the process.
 */
export function readClockFile(path: string, label = 'clock file'): number {
  const fail = (problem: string): never => {
    throw new ClockError('ERR_CLOCK_FILE', `${label} ${path}: ${problem}`);
  };
  const text = readSmallFile(path, fail);
  let content: unknown;
  try {
    content = JSON.parse(text);
  } catch {
    fail('is not JSON (expected {"offsetMs": <integer>, "setAt": "<time>"})');
  }
  if (typeof content !== 'object' || content === null || Array.isArray(content) || !('offsetMs' in content)) {
    return fail('has no "offsetMs" (expected {"offsetMs": <integer>, "setAt": "<time>"})');
  }
  const { offsetMs } = content;
  if (typeof offsetMs !== 'number') return fail('"offsetMs" is not a number');
  try {
    return checkClockOffset(offsetMs, '"offsetMs"');
  } catch (err) {
    return fail((err as Error).message);
  }
}

/** Whether `clock` is the real time for good: systemClock, or clockFromEnvironment() with neither variable set. */
export function isSystemClock(clock: Clock): boolean {
  return clock.nowMs === systemClock.nowMs;
}

function readSmallFile(path: string, fail: (problem: string) => never): string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return fail(
      code === 'ELOOP'
        ? 'is a symbolic link, not a file'
        : `cannot read it (${code ?? (err as Error).message})`,
    );
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) fail('is not a regular file');
    if (stats.size > CLOCK_FILE_MAX_BYTES) fail(`is larger than ${CLOCK_FILE_MAX_BYTES} bytes`);
    const buffer = Buffer.alloc(CLOCK_FILE_MAX_BYTES + 1);
    let length = 0;
    let read = 1;
    while (read > 0 && length < buffer.length) {
      read = readSync(fd, buffer, length, buffer.length - length, null);
      length += read;
    }
    if (length > CLOCK_FILE_MAX_BYTES) fail(`is larger than ${CLOCK_FILE_MAX_BYTES} bytes`);
    return buffer.toString('utf8', 0, length);
  } catch (err) {
    if (err instanceof ClockError) throw err;
    return fail(`cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  } finally {
    closeSync(fd);
  }
}
