/**
 * Tokens already verified, so that the same token presented again skips the RSA signature
 * check: a bounded LRU map keyed by the SHA-256 of the token (the token itself is never kept).
 * Only tokens that passed every check enter it; an entry ends at the token's `exp` (no clock
 * tolerance: stricter than the first check, never looser), or as soon as the key that signed
 * it leaves the tenant's JWKS. Authorization (client allow-list, certificate-only, app roles)
 * is not cached: the guards run on every request.
 *
 * @example
 *   cache.remember(token, { principal, tenantId, kid, expiresAtSeconds: claims.exp });
 *   cache.lookup(token); // the principal, until exp
 */
import { hash } from 'node:crypto';
import type { AppPrincipal } from '@certflow/claims';

export interface VerifiedToken {
  principal: AppPrincipal;
  tenantId: string;
  /** The signing key that verified it. */
  kid: string;
  /** The token's `exp` (seconds since the epoch). */
  expiresAtSeconds: number;
}

export class VerifiedTokenCache {
  private readonly entries = new Map<string, VerifiedToken>();

  constructor(
    /** 0 disables the cache. */
    readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  lookup(token: string): VerifiedToken | undefined {
    if (this.maxEntries === 0) return undefined;
    const key = digest(token);
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.entries.delete(key);
    if (this.now() >= entry.expiresAtSeconds * 1000) return undefined;
    this.entries.set(key, entry); // most recently used goes last
    return entry;
  }

  remember(token: string, verified: VerifiedToken): void {
    if (this.maxEntries === 0 || this.now() >= verified.expiresAtSeconds * 1000) return;
    const key = digest(token);
    this.entries.delete(key);
    this.entries.set(key, {
      ...verified,
      principal: Object.freeze({
        ...verified.principal,
        roles: Object.freeze([...verified.principal.roles]),
      }),
    });
    while (this.entries.size > this.maxEntries)
      this.entries.delete(this.entries.keys().next().value as string);
  }

  /** Drops the tokens signed by keys the tenant no longer publishes. */
  forgetKeys(tenantId: string, kids: readonly string[]): void {
    const removed = new Set(kids);
    for (const [key, entry] of this.entries)
      if (entry.tenantId === tenantId && removed.has(entry.kid)) this.entries.delete(key);
  }
}

function digest(token: string): string {
  return hash('sha256', token, 'base64url'); // one-shot: half the cost of createHash on the hot path
}
