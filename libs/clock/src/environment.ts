import { lstatSync } from 'node:fs';
import { OffsetClock, readClockFile, systemClock, type Clock } from './clock.js';
import { ClockError, formatClockOffset, parseClockOffset } from './offset.js';

/** The initial offset of a process's clock, e.g. "+2h", "-90s", "1d12h", "0". */
export const CLOCK_OFFSET_ENV = 'CERTFLOW_CLOCK_OFFSET';
/** A clock file (see writeClockFile) whose offset the process follows while it runs. */
export const CLOCK_FILE_ENV = 'CERTFLOW_CLOCK_FILE';
/** How often a followed clock file is looked at. */
export const CLOCK_FILE_POLL_MS = 100;

/** A process's clock; `file` is the clock file it follows, if any. */
export interface EnvironmentClock extends Clock {
  readonly file: string | undefined;
  /** Stops following the file. */
  close(): void;
}

const fromSystem: EnvironmentClock = Object.freeze({
  now: systemClock.now,
  nowMs: systemClock.nowMs,
  offsetMs: 0,
  file: undefined,
  close: () => undefined,
});

/**
 * The process's clock from CERTFLOW_CLOCK_OFFSET and CERTFLOW_CLOCK_FILE (an empty variable counts
 * as unset). Neither set: the system clock, at no cost. Otherwise a clock starting at the file's
 * offset when the file exists, else at CERTFLOW_CLOCK_OFFSET (else 0), that follows the file: it is
 * looked at every 100 ms without keeping the process alive. A bad variable or damaged file at start
 * throws ClockError naming the variable; a file damaged later keeps the last good offset and is
 * reported to `onError` (removing the file too).
 */
export function clockFromEnvironment(
  env: NodeJS.ProcessEnv = process.env,
  opts: { onError?(err: ClockError): void } = {},
): EnvironmentClock {
  const offsetText = env[CLOCK_OFFSET_ENV] || undefined;
  const file = env[CLOCK_FILE_ENV] || undefined;
  if (offsetText === undefined && file === undefined) return fromSystem;
  const initial = offsetText === undefined ? 0 : parseClockOffset(offsetText, CLOCK_OFFSET_ENV);
  let seen = file === undefined ? MISSING : version(file);
  const clock = new OffsetClock(
    file === undefined || seen === MISSING ? initial : readClockFile(file, CLOCK_FILE_ENV),
  );
  const report = (problem: string) =>
    opts.onError?.(
      new ClockError('ERR_CLOCK_FILE', `${problem}; the clock stays at ${formatClockOffset(clock.offsetMs)}`),
    );
  const follow = (path: string) => {
    const current = version(path);
    if (current === seen) return;
    seen = current;
    if (current === MISSING) return report(`${CLOCK_FILE_ENV} ${path}: is gone`);
    try {
      clock.set(readClockFile(path, CLOCK_FILE_ENV));
    } catch (err) {
      report((err as ClockError).message);
    }
  };
  // Polled here rather than with fs.watchFile, whose first look is asynchronous: a change made
  // between the read above and that look would never be seen. unref(): it never keeps a process alive.
  const timer = file === undefined ? undefined : setInterval(follow, CLOCK_FILE_POLL_MS, file).unref();
  return {
    now: () => clock.now(),
    nowMs: () => clock.nowMs(),
    get offsetMs() {
      return clock.offsetMs;
    },
    file,
    close: () => clearInterval(timer),
  };
}

/** The line a process logs at start when its clock is not the system clock; undefined when it is. */
export function clockNotice(clock: EnvironmentClock): string | undefined {
  if (clock.file === undefined && clock.offsetMs === 0) return undefined;
  const following = clock.file === undefined ? '' : ` and follows ${CLOCK_FILE_ENV}=${clock.file}`;
  return `clock: shifted by ${formatClockOffset(clock.offsetMs)} from the real time${following}`;
}

const MISSING = 'missing';

/** What changes whenever the file is replaced or written. */
function version(file: string): string {
  try {
    const stats = lstatSync(file, { throwIfNoEntry: false }); // the link itself: never what it points to
    return stats ? `${stats.ino}:${stats.mtimeMs}:${stats.ctimeMs}:${stats.size}` : MISSING;
  } catch (err) {
    return `unreadable: ${(err as NodeJS.ErrnoException).code}`; // read next, and reported
  }
}
