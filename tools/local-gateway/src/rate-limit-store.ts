/**
 * Counters for `rate-limit-by-key`: a sliding window of `periodMs` per counter key, in process
 * memory (default) or in Redis (several gateway instances then enforce one limit).
 *
 * Each admitted call is recorded with its time and weight (`increment-count`); the calls used
 * are the sum of the weights recorded within the last `periodMs`. A call is refused when the
 * window is already full (used ≥ limit); refused calls are not recorded. Retry-After is the
 * time until enough recorded calls leave the window for one more call to fit.
 *
 * Redis unavailable: **fail-open**. `hit`/`add` reject with `RateLimitStoreUnavailable`; the
 * policy then lets the request through (without the remaining-calls headers) and the gateway
 * writes one warning to stderr per outage. Rationale: the limit protects capacity, it is not
 * an authentication control (validate-jwt still runs), and a shared-cache outage must not take
 * every API down. Commands time out after `commandTimeoutMs` (500 ms) and are never queued
 * while disconnected.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

export interface RateLimitDecision {
  allowed: boolean;
  /** Calls counted in the window after this decision. */
  used: number;
  /** When refused: ms until one more call fits. */
  retryAfterMs: number;
}

export interface RateLimitStore {
  readonly kind: 'memory' | 'redis';
  /** Refuses when `used >= limit`; otherwise records `increment` (0 = check only). */
  hit(
    key: string,
    limit: number,
    periodMs: number,
    increment: number,
    now: number,
  ): Promise<RateLimitDecision>;
  /** Records `increment` without a check (a deferred increment-condition). Returns the calls used after it. */
  add(key: string, periodMs: number, increment: number, now: number): Promise<number>;
  close(): Promise<void>;
}

export class RateLimitStoreUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RateLimitStoreUnavailable';
  }
}

interface Entry {
  t: number;
  n: number;
}

export class MemoryRateLimitStore implements RateLimitStore {
  readonly kind = 'memory';
  private readonly windows = new Map<string, Entry[]>();
  private operations = 0;

  private window(key: string, periodMs: number, now: number): Entry[] {
    if (++this.operations % 10_000 === 0) this.sweep(now);
    let entries = this.windows.get(key);
    if (!entries) {
      entries = [];
      this.windows.set(key, entries);
    }
    let expired = 0;
    while (expired < entries.length && entries[expired]!.t <= now - periodMs) expired++;
    if (expired) entries.splice(0, expired);
    return entries;
  }

  /** Drops counters with nothing recorded in the last 300 s (the longest renewal period). */
  private sweep(now: number): void {
    for (const [key, entries] of this.windows) {
      const last = entries[entries.length - 1];
      if (!last || last.t <= now - 300_000) this.windows.delete(key);
    }
  }

  hit(
    key: string,
    limit: number,
    periodMs: number,
    increment: number,
    now: number,
  ): Promise<RateLimitDecision> {
    const entries = this.window(key, periodMs, now);
    const used = entries.reduce((sum, e) => sum + e.n, 0);
    if (used >= limit)
      return Promise.resolve({
        allowed: false,
        used,
        retryAfterMs: retryAfter(entries, used, limit, periodMs, now),
      });
    if (increment > 0) entries.push({ t: now, n: increment });
    return Promise.resolve({ allowed: true, used: used + increment, retryAfterMs: 0 });
  }

  add(key: string, periodMs: number, increment: number, now: number): Promise<number> {
    const entries = this.window(key, periodMs, now);
    if (increment > 0) entries.push({ t: now, n: increment });
    return Promise.resolve(entries.reduce((sum, e) => sum + e.n, 0));
  }

  close(): Promise<void> {
    this.windows.clear();
    return Promise.resolve();
  }
}

function retryAfter(
  entries: readonly Entry[],
  used: number,
  limit: number,
  periodMs: number,
  now: number,
): number {
  let freed = 0;
  for (const e of entries) {
    freed += e.n;
    if (used - freed < limit) return e.t + periodMs - now;
  }
  return periodMs;
}

/** Sliding-window log in a sorted set: score = time (ms), member = `time:random:weight`. */
const SLIDING_WINDOW_LUA = `
local key = KEYS[1]
local now = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local inc = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - period)
local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #entries, 2 do used = used + tonumber(string.match(entries[i], ':(%d+)$')) end
if limit >= 0 and used >= limit then
  local freed = 0
  for i = 1, #entries, 2 do
    freed = freed + tonumber(string.match(entries[i], ':(%d+)$'))
    if used - freed < limit then return {0, used, tonumber(entries[i + 1]) + period - now} end
  end
  return {0, used, period}
end
if inc > 0 then
  redis.call('ZADD', key, now, ARGV[5])
  redis.call('PEXPIRE', key, period)
end
return {1, used + inc, 0}
`;

export interface RedisRateLimitStoreOptions {
  /** Prefix of every counter's Redis key. */
  keyPrefix?: string;
  commandTimeoutMs?: number;
}

export class RedisRateLimitStore implements RateLimitStore {
  readonly kind = 'redis';
  private readonly prefix: string;

  private constructor(
    private readonly redis: Redis,
    opts: RedisRateLimitStoreOptions,
  ) {
    this.prefix = opts.keyPrefix ?? 'certflow:rate-limit-by-key:';
  }

  /** Connects (fails when Redis cannot be reached at start-up: a configuration error). */
  static async connect(url: string, opts: RedisRateLimitStoreOptions = {}): Promise<RedisRateLimitStore> {
    const redis = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs ?? 500,
      connectTimeout: 2_000,
      retryStrategy: (times) => Math.min(times * 100, 1_000),
    });
    redis.on('error', () => undefined); // reported per command (fail-open), not as an uncaught event
    try {
      await redis.connect();
      await redis.ping();
    } catch (err) {
      redis.disconnect();
      throw new Error(
        `cannot connect to Redis at ${redactUrl(url)} for rate-limit counters: ${(err as Error).message}`,
      );
    }
    return new RedisRateLimitStore(redis, opts);
  }

  private async run(
    key: string,
    now: number,
    periodMs: number,
    limit: number,
    increment: number,
  ): Promise<[number, number, number]> {
    const member = `${now}:${randomBytes(8).toString('hex')}:${increment}`;
    try {
      return (await this.redis.eval(
        SLIDING_WINDOW_LUA,
        1,
        this.prefix + key,
        now,
        periodMs,
        limit,
        increment,
        member,
      )) as [number, number, number];
    } catch (err) {
      throw new RateLimitStoreUnavailable(`Redis rate-limit store unavailable: ${(err as Error).message}`);
    }
  }

  async hit(
    key: string,
    limit: number,
    periodMs: number,
    increment: number,
    now: number,
  ): Promise<RateLimitDecision> {
    const [allowed, used, retryAfterMs] = await this.run(key, now, periodMs, limit, increment);
    return { allowed: allowed === 1, used, retryAfterMs };
  }

  async add(key: string, periodMs: number, increment: number, now: number): Promise<number> {
    const [, used] = await this.run(key, now, periodMs, -1, increment);
    return used;
  }

  async close(): Promise<void> {
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }
}

/** A Redis URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<invalid URL>';
  }
}
