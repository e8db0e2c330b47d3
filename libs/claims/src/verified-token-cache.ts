/**
 * Tokens already verified, so that the same token presented again skips the signature check.
 * One class for every validator in certflow (the API's guard and the gateway's `validate-jwt`).
 *
 * - Only complete successes are stored; a failure is never cached. Authorization (allow-lists,
 *   roles) is not part of an entry: callers check it on every request.
 * - An entry is found by the last 43 characters of the token (the end of its signature: short
 *   to hash on every request) and holds the whole token, which must match exactly; a token
 *   sharing that end with another only misses, and replaces it once it is verified.
 * - Time is the caller's: `lookup` hands back `expiresAtSeconds` and `notBeforeSeconds`, and the
 *   caller checks them against its clock and clock skew exactly as its signature path does.
 *   Tokens without a finite `exp` are not stored.
 * - An entry remembers the signing keys it was verified against (objects the caller's key
 *   store hands out, compared by identity). When `lookup` is given the current keys and they
 *   are not the same objects, the entry is dropped: a key that left the JWKS stops being
 *   trusted as soon as the caller has fetched the new set. {@link forget} drops entries by
 *   any other rule (for example every token one removed key signed).
 * - Bounded: least recently used entries go first. A hit moves its entry to the back only once
 *   the cache is half full; below that nothing is evicted, so the order does not matter yet.
 *
 * @example
 *   const cache = new VerifiedTokenCache<AppPrincipal>(10_000);
 *   cache.store(token, principal, { expiresAtSeconds: claims.exp, keys: [signingKey] });
 *   cache.lookup(token, { keys: [signingKey], nowSeconds })?.value; // the principal, until exp
 */
export const DEFAULT_VERIFIED_TOKEN_CACHE_SIZE = 10_000;

export interface VerifiedTokenEntry<V> {
  readonly token: string;
  readonly value: V;
  readonly expiresAtSeconds: number;
  readonly notBeforeSeconds: number | undefined;
  readonly keys: readonly unknown[];
}

export interface VerifiedTokenFacts {
  /** The token's `exp`; an entry without a finite one is not stored. */
  expiresAtSeconds: unknown;
  /** The token's `nbf`, when it has one; a present but non-numeric one is not stored. */
  notBeforeSeconds?: unknown;
  /** The signing keys the token was verified against, compared by identity at lookup. */
  keys?: readonly unknown[];
}

export interface LookupOptions {
  /** The signing keys trusted now: an entry verified against others is dropped. */
  keys?: readonly unknown[];
  /** The time now: an entry from its `exp` second on is dropped. */
  nowSeconds?: number;
  countMiss?: boolean;
}

export class VerifiedTokenCache<V> {
  private readonly entries = new Map<string, VerifiedTokenEntry<V>>();
  /** Lookups answered from the cache, and lookups that found nothing usable. */
  hits = 0;
  misses = 0;

  constructor(
    /** 0 disables the cache. */
    readonly maxEntries: number = DEFAULT_VERIFIED_TOKEN_CACHE_SIZE,
  ) {
    if (!Number.isInteger(maxEntries) || maxEntries < 0)
      throw new Error(`verified-token cache size must be a non-negative integer, got ${maxEntries}`);
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The entry for exactly this token, when there is one and, given `keys`, it was verified
   * against these very key objects. Given `nowSeconds`, an entry whose `exp` has come is dropped
   * (a caller with a clock skew checks the times itself). `countMiss` false leaves the miss
   * counter alone (for a second look at the same request).
   */
  lookup(
    token: string,
    { keys, nowSeconds, countMiss = true }: LookupOptions = {},
  ): VerifiedTokenEntry<V> | undefined {
    const key = keyOf(token);
    const entry = this.entries.get(key);
    if (entry === undefined || entry.token !== token) {
      if (countMiss) this.misses++;
      return undefined;
    }
    if (
      (keys !== undefined && !sameObjects(entry.keys, keys)) ||
      (nowSeconds !== undefined && nowSeconds >= entry.expiresAtSeconds)
    ) {
      this.entries.delete(key);
      if (countMiss) this.misses++;
      return undefined;
    }
    this.hits++;
    if (this.entries.size * 2 >= this.maxEntries) {
      this.entries.delete(key); // most recently used goes last
      this.entries.set(key, entry);
    }
    return entry;
  }

  store(token: string, value: V, facts: VerifiedTokenFacts): void {
    if (this.maxEntries === 0) return;
    const { expiresAtSeconds: exp, notBeforeSeconds: nbf } = facts;
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return;
    if (nbf !== undefined && (typeof nbf !== 'number' || !Number.isFinite(nbf))) return;
    const key = keyOf(token);
    this.entries.delete(key);
    while (this.entries.size >= this.maxEntries)
      this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, {
      token,
      value,
      expiresAtSeconds: exp,
      notBeforeSeconds: nbf as number | undefined,
      keys: [...(facts.keys ?? [])],
    });
  }

  delete(token: string): void {
    const key = keyOf(token);
    if (this.entries.get(key)?.token === token) this.entries.delete(key);
  }

  /** Drops every entry `rule` picks (for example the tokens a removed signing key signed). */
  forget(rule: (entry: VerifiedTokenEntry<V>) => boolean): void {
    for (const [key, entry] of this.entries) if (rule(entry)) this.entries.delete(key);
  }
}

const keyOf = (token: string): string => token.slice(-43);

function sameObjects(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
