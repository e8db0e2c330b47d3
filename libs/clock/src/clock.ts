import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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

/** The offset in a clock file; ClockError ERR_CLOCK_FILE names the path and what is wrong with it. */
export function readClockFile(path: string, label = 'clock file'): number {
  const fail = (problem: string): never => {
    throw new ClockError('ERR_CLOCK_FILE', `${label} ${path}: ${problem}`);
  };
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    fail(`cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
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
