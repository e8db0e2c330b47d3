/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header that lets
 * one call be followed through the partner, the gateway and the API in their logs.
 *
 *   traceparent: 00-<trace-id: 32 hex>-<parent-id: 16 hex>-<flags: 2 hex>
 *
 * A component that receives a valid `traceparent` keeps its trace id and makes a new span id
 * for its own part of the call ({@link continueTrace}); one that receives none, or one that is
 * malformed, starts a new trace (the specification's rule: an invalid header is ignored, never
 * repaired; and then `tracestate`, which belongs to that header, is not passed on either). certflow records no spans, so the flags it starts with are `00` (not sampled);
 * flags received from a caller are passed on unchanged.
 */
import { randomFillSync } from 'node:crypto';

export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** This component's span: 16 lowercase hex digits, not all zero. */
  readonly spanId: string;
  /** Two lowercase hex digits; bit 0 is `sampled`. */
  readonly flags: string;
  /** The caller's span, when this context continues a received `traceparent`. */
  readonly parentSpanId?: string;
}

export const TRACEPARENT_HEADER = 'traceparent';

const HEX = /^[0-9a-f]+$/;
const ZEROS = /^0+$/;

/**
 * The context a `traceparent` value carries (its parent id as `spanId`), or undefined when the
 * value is absent, repeated or malformed. Versions above 00 are read as the specification asks
 * (the first four fields, more only after a dash); version ff is invalid.
 */
export function parseTraceparent(value: string | readonly string[] | undefined): TraceContext | undefined {
  if (typeof value !== 'string') return undefined; // absent, or sent twice: ambiguous
  const v = value.trim();
  if (v.length < 55 || (v.length > 55 && v[55] !== '-')) return undefined;
  const version = v.slice(0, 2);
  if (!HEX.test(version) || version === 'ff' || (version === '00' && v.length !== 55)) return undefined;
  if (v[2] !== '-' || v[35] !== '-' || v[52] !== '-') return undefined;
  const traceId = v.slice(3, 35);
  const spanId = v.slice(36, 52);
  const flags = v.slice(53, 55);
  if (!HEX.test(traceId) || ZEROS.test(traceId)) return undefined;
  if (!HEX.test(spanId) || ZEROS.test(spanId)) return undefined;
  if (!HEX.test(flags)) return undefined;
  return { traceId, spanId, flags };
}

export function formatTraceparent(context: TraceContext): string {
  return `00-${context.traceId}-${context.spanId}-${context.flags}`;
}

/** A new trace: random trace and span ids, not sampled. */
export function startTrace(): TraceContext {
  return { traceId: randomHex(16), spanId: randomHex(8), flags: '00' };
}

/**
 * This component's part of a call: the caller's trace with a new span id when `incoming` is a
 * valid `traceparent`, otherwise a new trace.
 */
export function continueTrace(incoming: string | readonly string[] | undefined): TraceContext {
  const parent = parseTraceparent(incoming);
  return parent
    ? { traceId: parent.traceId, spanId: randomHex(8), flags: parent.flags, parentSpanId: parent.spanId }
    : startTrace();
}

// Random bytes come from a pool refilled 4 KiB at a time: one system call per ~170 ids
// instead of one per id, on the gateway's per-request path.
const pool = Buffer.alloc(4096);
let offset = pool.length;

function randomHex(bytes: number): string {
  for (;;) {
    if (offset + bytes > pool.length) {
      randomFillSync(pool);
      offset = 0;
    }
    const hex = pool.toString('hex', offset, offset + bytes);
    offset += bytes;
    if (!ZEROS.test(hex)) return hex; // all zeros is invalid (probability 2^-64 or less)
  }
}
