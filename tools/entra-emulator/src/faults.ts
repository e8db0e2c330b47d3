/**
 * Fault injection for resilience tests, applied to the token endpoints (v2.0 and v1) only:
 * discovery, JWKS, Graph and the admin API keep working, so a test can break token issuance
 * and repair it again. Set at start (`faults` option, `--fault-*` flags), and at run time with
 * `RunningEmulator.setFaults()` or `PATCH /admin/faults`.
 *
 * Order per request: the added latency, then a full outage, then a 429 with the configured
 * share, then a 5xx with its share. Shares are probabilities (0–1), so 1 is deterministic.
 */
import type { AdminRoute } from './admin-api';
import { EmulatorError } from './errors';
import { graphErrors } from './graph-errors';

export type OutageMode = 'none' | '503' | 'drop';

export interface FaultSettings {
  /** Milliseconds added before every token request is answered (default 0). */
  latencyMs: number;
  /** Share (0–1) of token requests answered 429 with `Retry-After` (default 0). */
  throttleShare: number;
  /** `Retry-After` seconds sent with 429s and outage 503s (default 5). */
  retryAfterSeconds: number;
  /** Share (0–1) of token requests answered with `serverErrorStatus` (default 0). */
  serverErrorShare: number;
  /** Status of injected server errors: 500, 502, 503 or 504 (default 500). */
  serverErrorStatus: 500 | 502 | 503 | 504;
  /** Full outage: every token request gets a 503 (`'503'`) or its connection dropped unanswered (`'drop'`). */
  outage: OutageMode;
}

export const NO_FAULTS: Readonly<FaultSettings> = Object.freeze({
  latencyMs: 0,
  throttleShare: 0,
  retryAfterSeconds: 5,
  serverErrorShare: 0,
  serverErrorStatus: 500,
  outage: 'none',
});

export type FaultDecision =
  { kind: 'none' } | { kind: 'drop' } | { kind: 'outage' } | { kind: 'throttle' } | { kind: 'serverError' };

export class FaultInjector {
  private settings: FaultSettings;

  constructor(
    initial: Partial<FaultSettings> = {},
    private readonly random: () => number = Math.random,
  ) {
    this.settings = mergeFaults(NO_FAULTS, initial);
  }

  get current(): FaultSettings {
    return { ...this.settings };
  }

  /** Merges `patch` into the current settings (validated as a whole); returns the result. */
  update(patch: unknown): FaultSettings {
    this.settings = mergeFaults(this.settings, patch);
    return this.current;
  }

  reset(): FaultSettings {
    this.settings = { ...NO_FAULTS };
    return this.current;
  }

  /** Waits the added latency, then decides what (if anything) breaks this request. */
  async decide(): Promise<FaultDecision> {
    const s = this.settings;
    if (s.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, s.latencyMs));
    if (s.outage === 'drop') return { kind: 'drop' };
    if (s.outage === '503') return { kind: 'outage' };
    if (s.throttleShare > 0 && this.random() < s.throttleShare) return { kind: 'throttle' };
    if (s.serverErrorShare > 0 && this.random() < s.serverErrorShare) return { kind: 'serverError' };
    return { kind: 'none' };
  }
}

const FIELDS = new Set(Object.keys(NO_FAULTS));

/** Throws EmulatorError('ERR_INVALID_OPTIONS') naming the bad field. */
export function mergeFaults(base: Readonly<FaultSettings>, patch: unknown): FaultSettings {
  const invalid = (what: string) => new EmulatorError('ERR_INVALID_OPTIONS', `faults: ${what}`);
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) throw invalid('must be an object');
  const input = patch as Record<string, unknown>;
  for (const key of Object.keys(input))
    if (!FIELDS.has(key)) throw invalid(`unknown field '${key.slice(0, 40)}'`);
  const result = { ...base };
  const num = (key: keyof FaultSettings, min: number, max: number, integer: boolean) => {
    const v = input[key];
    if (v === undefined) return;
    if (
      typeof v !== 'number' ||
      !Number.isFinite(v) ||
      v < min ||
      v > max ||
      (integer && !Number.isInteger(v))
    ) {
      throw invalid(`${key} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
    }
    (result as Record<string, unknown>)[key] = v;
  };
  num('latencyMs', 0, 60_000, true);
  num('throttleShare', 0, 1, false);
  num('retryAfterSeconds', 0, 86_400, true);
  num('serverErrorShare', 0, 1, false);
  if (input.serverErrorStatus !== undefined) {
    if (![500, 502, 503, 504].includes(input.serverErrorStatus as number))
      throw invalid('serverErrorStatus must be 500, 502, 503 or 504');
    result.serverErrorStatus = input.serverErrorStatus as FaultSettings['serverErrorStatus'];
  }
  if (input.outage !== undefined) {
    if (input.outage !== 'none' && input.outage !== '503' && input.outage !== 'drop')
      throw invalid("outage must be 'none', '503' or 'drop'");
    result.outage = input.outage;
  }
  return result;
}

/** `GET/PUT/PATCH/DELETE /admin/faults`: read, replace, merge into or clear the injected faults. */
export function faultsRoute(faults: FaultInjector): AdminRoute {
  return async (method, body) => {
    try {
      if (method === 'GET') return { status: 200, body: { ...faults.current } };
      if (method === 'DELETE') return { status: 200, body: { ...faults.reset() } };
      if (method === 'PATCH') return { status: 200, body: { ...faults.update(await body()) } };
      if (method === 'PUT')
        return { status: 200, body: { ...faults.update({ ...NO_FAULTS, ...(await putBody(body)) }) } };
    } catch (err) {
      if (err instanceof EmulatorError) throw graphErrors.badRequest(err.message);
      throw err;
    }
    throw graphErrors.methodNotAllowed();
  };
}

async function putBody(body: () => Promise<unknown>): Promise<Record<string, unknown>> {
  const value = await body();
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw graphErrors.badRequest('faults: must be an object');
  return value as Record<string, unknown>;
}
