import { describe, expect, it } from 'vitest';
import { continueTrace, formatTraceparent, parseTraceparent, startTrace } from './trace-context';

const VALID = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('traceparent', () => {
  it('reads the example of the W3C specification', () => {
    expect(parseTraceparent(VALID)).toEqual({
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '00f067aa0ba902b7',
      flags: '01',
    });
  });

  it.each([
    ['absent', undefined],
    ['sent twice', [VALID, VALID]],
    ['upper-case hex', VALID.toUpperCase()],
    ['all-zero trace id', '00-00000000000000000000000000000000-00f067aa0ba902b7-01'],
    ['all-zero parent id', '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01'],
    ['version ff', 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'],
    ['version 00 with more fields', `${VALID}-extra`],
    ['too short', VALID.slice(0, 54)],
    ['wrong separators', VALID.replace(/-/g, '_')],
    ['not hex', '00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01'],
    ['a future version glued to more text', `01-${VALID.slice(3)}x`],
  ])('ignores a value that is %s', (_, value) => {
    expect(parseTraceparent(value as string)).toBeUndefined();
  });

  it('reads the first four fields of a future version', () => {
    expect(parseTraceparent(`cc-${VALID.slice(3)}-what-comes-next`)?.traceId).toBe(
      '4bf92f3577b34da6a3ce929d0e0e4736',
    );
  });

  it('continues a valid trace with a new span and the caller’s flags', () => {
    const child = continueTrace(VALID);
    expect(child.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(child.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(child.spanId).not.toBe('00f067aa0ba902b7');
    expect(child.flags).toBe('01');
    expect(child.parentSpanId).toBe('00f067aa0ba902b7');
    const { parentSpanId: _, ...sent } = child;
    expect(parseTraceparent(formatTraceparent(child))).toEqual(sent);
  });

  it('starts a new trace when the header is malformed', () => {
    const fresh = continueTrace('00-zz');
    expect(fresh.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(fresh.flags).toBe('00');
    expect(fresh.parentSpanId).toBeUndefined();
  });

  it('makes different ids every time, across refills of the random pool', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const t = startTrace();
      ids.add(t.traceId);
      ids.add(t.spanId);
    }
    expect(ids.size).toBe(2000);
  });
});
