/**
 * A token cache shared by worker replicas, in a {@link TokenStore} (Redis with PARTNER_REDIS_URL;
 * see token-stores.ts), so that many replicas need one token per lifetime, not one each. It sits *behind* each replica's TokenCache, as its
 * fetcher: the local cache still answers every call in O(1); only when a replica needs a token
 * (cold, refresh ahead, or forced after a 401) does it look here.
 *
 * - Tokens are stored encrypted with AES-256-GCM under a key all replicas share
 *   (PARTNER_CACHE_KEY, 32 bytes as base64 or hex); the Redis key is a SHA-256 of
 *   (authority, client, scope), which is also the GCM additional data, so a value cannot be
 *   moved to another key. Anything that does not decrypt is treated as absent.
 * - One replica refreshes while the others wait: a lock (`setIfAbsent` with a lifetime); the holder
 *   asks the authority and publishes the token; the others poll for it (bounded), and fetch
 *   themselves if the lock holder vanished.
 * - If Redis is down or slow, the replica asks the authority itself (its local cache carries
 *   on); the switch to and from the fallback is logged once each way. Calls never fail because
 *   of Redis.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, randomUUID } from 'node:crypto';
import { systemClock, type Clock } from '@certflow/clock';
import type { AcquiredToken } from './certificate-token-client';
import { tokenKeyString, type FetchContext, type TokenFetcher } from './token-cache';
import type { TokenStore } from './token-store';

/** Decodes PARTNER_CACHE_KEY: exactly 32 bytes, as 64 hex digits or base64/base64url. */
export function parseCacheKey(raw: string): Buffer {
  const v = raw.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(v)) key = Buffer.from(v, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(v))
    key = Buffer.from(v.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (!key || key.length !== 32) {
    throw new TypeError(
      'must be 32 random bytes as 64 hex digits or base64 (e.g. node -e "console.log(crypto.randomBytes(32).toString(\'base64\'))")',
    );
  }
  if (key.every((b) => b === key[0])) throw new TypeError('must be random, not one repeated byte');
  return key;
}

export function encryptToken(key: Buffer, aad: string, token: AcquiredToken): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const plain = JSON.stringify({ t: token.accessToken, e: token.expiresOn.getTime() });
  const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return `v1.${iv.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}.${ct.toString('base64url')}`;
}

/** The stored token, or undefined when it is not ours (other key, tampered, other format). */
export function decryptToken(
  key: Buffer,
  aad: string,
  value: string,
): { accessToken: string; expiresOn: Date } | undefined {
  const [v, iv, tag, ct] = value.split('.');
  if (v !== 'v1' || !iv || !tag || ct === undefined) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    const plain = Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString(
      'utf8',
    );
    const parsed = JSON.parse(plain) as { t?: unknown; e?: unknown };
    if (typeof parsed.t !== 'string' || parsed.t === '' || typeof parsed.e !== 'number') return undefined;
    return { accessToken: parsed.t, expiresOn: new Date(parsed.e) };
  } catch {
    return undefined;
  }
}

export interface SharedTokenCacheOptions {
  /** Where tokens and locks are kept (e.g. `new RedisTokenStore(url)`); closed with the cache. */
  store: TokenStore;
  /** 32 bytes, from parseCacheKey(PARTNER_CACHE_KEY). */
  encryptionKey: Buffer;
  /** The replica's own way to get a token (MSAL, skipCache). */
  fetcher: TokenFetcher;
  /** The time tokens' `expiresOn` is judged by (default: the real time); waiting uses the real time. */
  clock?: Clock;
  /** Lock lifetime: longer than a token request takes (default 15 s). */
  lockTtlMs?: number;
  /** How long a replica waits for the lock holder's token before fetching itself (default 10 s). */
  waitMs?: number;
  pollMs?: number;
  /** Each store command's time limit (default 500 ms); slower counts as down. */
  commandTimeoutMs?: number;
  /** A shared token is taken only with at least this much life left (default 2 min, capped at half its lifetime). */
  minRemainingMs?: number;
  prefix?: string;
  log?: (message: string) => void;
}

export interface SharedTokenCacheStats {
  sharedHits: number;
  lockAcquired: number;
  waitedForPeer: number;
  fallbacks: number;
  storeErrors: number;
}

export class SharedTokenCache {
  private readonly store: TokenStore;
  private readonly clock: Clock;
  private readonly lockTtlMs: number;
  private readonly waitMs: number;
  private readonly pollMs: number;
  private readonly commandTimeoutMs: number;
  private readonly minRemainingMs: number;
  private readonly prefix: string;
  private readonly log: (message: string) => void;
  private degraded = false;
  readonly stats: SharedTokenCacheStats = {
    sharedHits: 0,
    lockAcquired: 0,
    waitedForPeer: 0,
    fallbacks: 0,
    storeErrors: 0,
  };

  constructor(private readonly opts: SharedTokenCacheOptions) {
    this.store = opts.store;
    this.clock = opts.clock ?? systemClock;
    this.lockTtlMs = opts.lockTtlMs ?? 15_000;
    this.waitMs = opts.waitMs ?? 10_000;
    this.pollMs = opts.pollMs ?? 50;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 500;
    this.minRemainingMs = opts.minRemainingMs ?? 120_000;
    this.prefix = opts.prefix ?? 'certflow:partner-token';
    this.log = opts.log ?? (() => {});
  }

  /** The fetcher to give to the replica's TokenCache. */
  readonly fetcher: TokenFetcher = (ctx) => this.fetch(ctx);

  close(): void {
    this.store.close();
  }

  private async fetch(ctx: FetchContext): Promise<AcquiredToken> {
    const id = createHash('sha256').update(tokenKeyString(ctx.key)).digest('base64url');
    const tokenKey = `${this.prefix}:${id}`;
    const lockKey = `${tokenKey}:lock`;
    try {
      const shared = await this.readAcceptable(tokenKey, id, ctx);
      if (shared) return this.shared(shared);
      const deadline = Date.now() + this.waitMs;
      for (;;) {
        const owner = randomUUID();
        if (await this.command(() => this.store.setIfAbsent(lockKey, owner, this.lockTtlMs))) {
          this.stats.lockAcquired++;
          this.recovered();
          try {
            // Another replica may have published between our read and our lock.
            const again = await this.readAcceptable(tokenKey, id, ctx);
            if (again) return this.shared(again);
            const token = await this.opts.fetcher(ctx);
            const ttl = token.expiresOn.getTime() - this.clock.nowMs();
            if (ttl > 0)
              await this.command(() =>
                this.store.set(tokenKey, encryptToken(this.opts.encryptionKey, id, token), ttl),
              ).catch((err: unknown) => this.down(err));
            return token;
          } finally {
            await this.command(() => this.store.deleteIfEquals(lockKey, owner)).catch(() => {});
          }
        }
        // Someone else is fetching: wait for its token.
        this.stats.waitedForPeer++;
        this.recovered();
        while (Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, this.pollMs));
          const published = await this.readAcceptable(tokenKey, id, ctx);
          if (published) return this.shared(published);
          if (!(await this.command(() => this.store.has(lockKey)))) break; // the holder gave up or failed: try the lock again
        }
        if (Date.now() >= deadline) {
          this.log(
            `shared token cache: no token from the replica holding the lock within ${this.waitMs} ms; fetching one myself`,
          );
          this.stats.fallbacks++;
          return await this.opts.fetcher(ctx);
        }
      }
    } catch (err) {
      if (err instanceof StoreUnavailable) {
        this.down(err.cause);
        this.stats.fallbacks++;
        return this.opts.fetcher(ctx);
      }
      throw err; // the authority's error, from our own fetch
    }
  }

  private shared(token: { accessToken: string; expiresOn: Date }): AcquiredToken {
    this.stats.sharedHits++;
    return { ...token, source: 'shared' };
  }

  /** A stored token this replica may take: decrypts, has enough life, and is newer than what it holds. */
  private async readAcceptable(
    tokenKey: string,
    id: string,
    ctx: FetchContext,
  ): Promise<{ accessToken: string; expiresOn: Date } | undefined> {
    const raw = await this.command(() => this.store.get(tokenKey));
    if (raw === undefined) return undefined;
    const token = decryptToken(this.opts.encryptionKey, id, raw);
    if (!token) {
      this.log(
        'shared token cache: a stored token does not decrypt (another PARTNER_CACHE_KEY?); ignoring it',
      );
      return undefined;
    }
    const remaining = token.expiresOn.getTime() - this.clock.nowMs();
    if (remaining <= 0) return undefined;
    if (ctx.current) {
      if (token.accessToken === ctx.current.accessToken) return undefined;
      if (token.expiresOn.getTime() <= ctx.current.expiresOn.getTime()) return undefined;
      const lifetime = ctx.current.expiresOn.getTime() - ctx.current.obtainedAt;
      if (remaining < Math.min(this.minRemainingMs, lifetime / 2)) return undefined;
    } else if (remaining < Math.min(this.minRemainingMs, 5_000)) return undefined;
    return token;
  }

  /** One store command within commandTimeoutMs; any failure is a StoreUnavailable. */
  private async command<T>(run: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        run(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${this.commandTimeoutMs} ms`)),
            this.commandTimeoutMs,
          );
        }),
      ]);
    } catch (err) {
      this.stats.storeErrors++;
      throw new StoreUnavailable(err);
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  private down(err: unknown): void {
    if (this.degraded) return;
    this.degraded = true;
    const cause = err instanceof StoreUnavailable ? err.cause : err;
    this.log(
      `shared token cache: ${this.store.name} unavailable (${(cause as Error)?.message ?? String(cause)}); using this replica's own cache until it is back`,
    );
  }

  private recovered(): void {
    if (!this.degraded) return;
    this.degraded = false;
    this.log(`shared token cache: ${this.store.name} is back; sharing tokens again`);
  }
}

class StoreUnavailable extends Error {
  constructor(override readonly cause: unknown) {
    super(`token store unavailable: ${(cause as Error)?.message ?? String(cause)}`);
  }
}
