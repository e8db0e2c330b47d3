import { describe, expect, it } from 'vitest';
import { catchError } from './clock.test-helpers.js';
import { formatClockOffset, MAX_CLOCK_OFFSET_MS, parseClockOffset } from './offset.js';
import { OffsetClock } from './clock.js';

const H = 3_600_000;

describe('parseClockOffset', () => {
  it.each([
    ['0', 0],
    ['+0', 0],
    ['-0s', 0],
    ['+2h', 2 * H],
    ['2h', 2 * H],
    ['-90s', -90_000],
    ['1d12h30m', 36.5 * H],
    ['+3600s', H],
    ['-1m30s', -90_000],
    ['1500ms', 1500],
    ['3650d', MAX_CLOCK_OFFSET_MS],
    ['-3650d', -MAX_CLOCK_OFFSET_MS],
  ])('reads %s', (text, ms) => {
    expect(parseClockOffset(text)).toBe(ms);
  });

  it.each([
    '',
    ' 2h',
    '2h ',
    '2',
    'h',
    '+',
    '2 h',
    '2H',
    '1h1d',
    '1h1h',
    '1.5h',
    '+-1h',
    '2hours',
    '0x10s',
    '1e3s',
  ])('refuses %j, naming the text and the option', (text) => {
    const err = catchError(() => parseClockOffset(text, 'CERTFLOW_CLOCK_OFFSET'));
    expect(err.code).toBe('ERR_CLOCK_OFFSET');
    expect(err.message).toContain(`CERTFLOW_CLOCK_OFFSET ${JSON.stringify(text)} is not a clock offset`);
  });

  it('refuses more than 3650 days either way', () => {
    for (const text of ['3651d', '-3650d1s', '99999999999999d', '315360000001ms']) {
      expect(catchError(() => parseClockOffset(text)).message).toMatch(
        /more than 3650 days|not a clock offset/,
      );
    }
  });
});

describe('formatClockOffset', () => {
  it.each([
    [0, '0'],
    [2 * H, '+2h'],
    [-90_000, '-1m30s'],
    [86_400_000 + 1000, '+1d1s'],
    [-1, '-1ms'],
    [MAX_CLOCK_OFFSET_MS, '+3650d'],
  ])('writes %d as %s', (ms, text) => {
    expect(formatClockOffset(ms)).toBe(text);
  });

  it('round-trips with parseClockOffset', () => {
    const samples = [0, 1, -1, 999, 61_001, -H, 36.5 * H + 7, MAX_CLOCK_OFFSET_MS, -MAX_CLOCK_OFFSET_MS];
    for (let i = 0; i < 200; i += 1) samples.push(Math.round((Math.random() * 2 - 1) * MAX_CLOCK_OFFSET_MS));
    for (const ms of samples) expect(parseClockOffset(formatClockOffset(ms))).toBe(ms);
    for (const text of ['+2h', '-1m30s', '+1d12h30m', '0'])
      expect(formatClockOffset(parseClockOffset(text))).toBe(text);
  });

  it.each([Number.NaN, Infinity, 1.5, MAX_CLOCK_OFFSET_MS + 1])('refuses %d', (ms) => {
    expect(catchError(() => formatClockOffset(ms)).code).toBe('ERR_CLOCK_OFFSET');
  });
});

describe('OffsetClock', () => {
  it('is the real time shifted by its offset, and set() moves it', () => {
    const clock = new OffsetClock(2 * H);
    const before = Date.now();
    const shifted = clock.nowMs();
    expect(shifted - before).toBeGreaterThanOrEqual(2 * H);
    expect(shifted - Date.now()).toBeLessThanOrEqual(2 * H);
    clock.set(-H);
    expect(clock.offsetMs).toBe(-H);
    expect(Math.abs(clock.now().getTime() - (Date.now() - H))).toBeLessThan(50);
  });

  it('refuses an offset out of bounds and keeps the one it had', () => {
    const clock = new OffsetClock(5);
    expect(catchError(() => clock.set(MAX_CLOCK_OFFSET_MS + 1)).code).toBe('ERR_CLOCK_OFFSET');
    expect(catchError(() => new OffsetClock(0.5)).code).toBe('ERR_CLOCK_OFFSET');
    expect(clock.offsetMs).toBe(5);
  });
});
