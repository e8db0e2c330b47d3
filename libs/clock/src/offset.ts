/** The error of every refusal in this library; `code` says whether an offset or a clock file is at fault. */
export class ClockError extends Error {
  constructor(
    readonly code: 'ERR_CLOCK_OFFSET' | 'ERR_CLOCK_FILE',
    message: string,
  ) {
    super(message);
    this.name = 'ClockError';
  }
}

const UNITS = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
  ['ms', 1],
] as const;

/** The largest offset, either way: ten years (3650 days). */
export const MAX_CLOCK_OFFSET_MS = 3650 * 86_400_000;

// Units in this order, each at most once; up to 13 digits each keeps every sum an exact integer.
const OFFSET =
  /^([+-])?(?:(\d{1,13})d)?(?:(\d{1,13})h)?(?:(\d{1,13})m(?!s))?(?:(\d{1,13})s)?(?:(\d{1,13})ms)?$/;
const EXPECTED =
  'expected whole days, hours, minutes, seconds in that order with an optional sign, e.g. "+2h", "-90s", "1d12h30m" or "0"';

/**
 * Milliseconds of an offset written as "+2h", "-90s", "1d12h30m", "+3600s" or "0" (units d, h, m, s
 * and ms, in that order, each at most once; optional sign; at most 3650 days either way).
 * `label` names the option in the error, e.g. 'CERTFLOW_CLOCK_OFFSET'.
 */
export function parseClockOffset(text: string, label = 'clock offset'): number {
  if (text === '0' || text === '+0' || text === '-0') return 0;
  const match = OFFSET.exec(text);
  if (!match || match.slice(2).every((part) => part === undefined)) {
    throw new ClockError(
      'ERR_CLOCK_OFFSET',
      `${label} ${JSON.stringify(text)} is not a clock offset: ${EXPECTED}`,
    );
  }
  const magnitude = UNITS.reduce((sum, [, ms], i) => sum + Number(match[i + 2] ?? 0) * ms, 0);
  if (magnitude > MAX_CLOCK_OFFSET_MS) {
    throw new ClockError('ERR_CLOCK_OFFSET', `${label} ${JSON.stringify(text)} is more than 3650 days`);
  }
  return match[1] === '-' && magnitude !== 0 ? -magnitude : magnitude;
}

/** The offset in the form parseClockOffset reads back: "+2h", "-1m30s", "+1d0h0m1s" is written "+1d1s", "0". */
export function formatClockOffset(ms: number): string {
  checkClockOffset(ms);
  if (ms === 0) return '0';
  let rest = Math.abs(ms);
  let text = ms < 0 ? '-' : '+';
  for (const [unit, size] of UNITS) {
    const count = Math.floor(rest / size);
    if (count > 0) text += `${count}${unit}`;
    rest -= count * size;
  }
  return text;
}

/** Throws unless `ms` is a whole number of milliseconds within ±3650 days. */
export function checkClockOffset(ms: number, label = 'clock offset'): number {
  if (!Number.isSafeInteger(ms) || Math.abs(ms) > MAX_CLOCK_OFFSET_MS) {
    throw new ClockError(
      'ERR_CLOCK_OFFSET',
      `${label} ${String(ms)} is not a whole number of milliseconds within ±3650 days`,
    );
  }
  return ms === 0 ? 0 : ms; // no -0
}
