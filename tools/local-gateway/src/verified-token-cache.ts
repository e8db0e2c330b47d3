/**
 * Verified-token cache for `validate-jwt` / `validate-azure-ad-token`: skips the RS256/PS256
 * signature check for a token string this policy instance has already verified successfully.
 *
 * - One cache per compiled policy statement (so per policy instance: its audiences, issuers and
 *   required claims were all checked when the entry was made). Entries are found by the last 43
 *   characters of the token (the end of its signature: short to hash on every request) and hold
 *   the whole token, which must match exactly; a token sharing that end with another only
 *   misses (and replaces it when it is verified).
 * - Only complete successes are stored; a failure is never cached.
 * - Tokens without `exp` are not cached.
 * - At every lookup `exp` and `nbf` are checked again against the current time with the policy's
 *   clock skew, exactly as the signature path does, so a cached token expires on time.
 * - An entry remembers the signing-key sets it was verified against (the metadata objects the
 *   openid-config cache hands out; a new pull makes new objects). When the current key sets are
 *   not the same objects, the entry is dropped and the token is verified again: a key removed
 *   from the JWKS stops being trusted as soon as the gateway has re-fetched it.
 * - Bounded: least recently used entries go first (a hit moves its entry to the back once the
 *   cache is half full; below that nothing is evicted, so the order does not matter yet).
 */
import type { ValidatedJwt } from './jwt-validation';

export const DEFAULT_VERIFIED_TOKEN_CACHE_SIZE = 10_000;

export interface VerifiedEntry {
  readonly token: string;
  readonly validated: ValidatedJwt;
  readonly exp: number;
  readonly nbf: number | undefined;
  readonly keySets: readonly unknown[];
}

export class VerifiedTokenCache {
  private readonly entries = new Map<string, VerifiedEntry>();
  /** Lookups answered from the cache, and lookups that had to verify the signature. */
  hits = 0;
  misses = 0;

  constructor(readonly maxEntries: number = DEFAULT_VERIFIED_TOKEN_CACHE_SIZE) {
    if (!Number.isInteger(maxEntries) || maxEntries < 0)
      throw new Error(`verified-token cache size must be a non-negative integer, got ${maxEntries}`);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The cached result when `keySets` are the ones it was verified against; expiry is checked by the caller. */
  lookup(token: string, keySets: readonly unknown[], countMiss = true): VerifiedEntry | undefined {
    const key = keyOf(token);
    const entry = this.entries.get(key);
    if (!entry || entry.token !== token) {
      if (countMiss) this.misses++;
      return undefined;
    }
    if (!sameKeySets(entry.keySets, keySets)) {
      this.entries.delete(key);
      if (countMiss) this.misses++;
      return undefined;
    }
    this.hits++;
    if (this.entries.size * 2 >= this.maxEntries) {
      // LRU: move to the end.
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return entry;
  }

  delete(token: string): void {
    const key = keyOf(token);
    if (this.entries.get(key)?.token === token) this.entries.delete(key);
  }

  store(token: string, validated: ValidatedJwt, keySets: readonly unknown[]): void {
    if (this.maxEntries === 0) return;
    const { exp, nbf } = validated.claims;
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return;
    if (nbf !== undefined && (typeof nbf !== 'number' || !Number.isFinite(nbf))) return;
    const key = keyOf(token);
    this.entries.delete(key);
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    this.entries.set(key, { token, validated, exp, nbf, keySets: [...keySets] });
  }
}

const keyOf = (token: string): string => token.slice(-43);

function sameKeySets(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
