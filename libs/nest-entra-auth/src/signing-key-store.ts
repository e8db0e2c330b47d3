/**
 * One tenant's token-signing keys, fetched from its JWKS with jwks-rsa and kept by `kid`:
 * - an unknown `kid` triggers a re-fetch (Entra publishes a new key before signing with it),
 *   at most one fetch in flight and one per {@link SigningKeyStoreOptions.minRefreshIntervalMs},
 *   so random `kid`s cannot flood the IdP: a request arriving during the pause waits for it;
 * - keys older than `maxAgeMs` are refreshed in the background while still being served;
 * - when the JWKS cannot be read, the keys already known keep being served (stale), and only
 *   a `kid` never seen is a {@link SigningKeysUnavailableError} (503, not the caller's fault);
 * - a `kid` that disappears from the JWKS is reported to `onKeysRemoved` (cached tokens go).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { JwksClient } from 'jwks-rsa';
import { SigningKeysUnavailableError, UnknownSigningKeyError } from './auth-failure';

export interface SigningKeyStoreOptions {
  /** How long a fetched key set is fresh; then it is re-fetched in the background (default 10 minutes). */
  maxAgeMs?: number;
  /** Least time between two JWKS fetches (default 1 s). */
  minRefreshIntervalMs?: number;
  onKeysRemoved?: (kids: string[]) => void;
  /** Reports a failed background refresh (stale keys are still served). */
  onRefreshFailed?: (error: Error) => void;
  now?: () => number;
}

export class SigningKeyStore {
  private keys = new Map<string, KeyObject>();
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private lastAttemptAt = Number.NEGATIVE_INFINITY;
  private refreshing: Promise<void> | undefined;
  private readonly maxAgeMs: number;
  private readonly minRefreshIntervalMs: number;
  private readonly now: () => number;

  constructor(
    private readonly client: Pick<JwksClient, 'getSigningKeys'>,
    private readonly options: SigningKeyStoreOptions = {},
  ) {
    this.maxAgeMs = options.maxAgeMs ?? 10 * 60_000;
    this.minRefreshIntervalMs = options.minRefreshIntervalMs ?? 1_000;
    this.now = options.now ?? Date.now;
  }

  /** Whether at least one signing key is known (readiness). */
  get loaded(): boolean {
    return this.keys.size > 0;
  }

  get kids(): string[] {
    return [...this.keys.keys()];
  }

  /** The public key for `kid`; throws UnknownSigningKeyError or SigningKeysUnavailableError. */
  async keyFor(kid: string): Promise<KeyObject> {
    const known = this.keys.get(kid);
    if (known !== undefined) {
      if (this.now() - this.fetchedAt > this.maxAgeMs) this.refreshInBackground();
      return known;
    }
    await this.refresh();
    const fetched = this.keys.get(kid);
    if (fetched === undefined)
      throw new UnknownSigningKeyError(`no signing key with kid ${JSON.stringify(kid.slice(0, 64))}`);
    return fetched;
  }

  /** Fetches the JWKS (joining a fetch in flight); rejects with SigningKeysUnavailableError. */
  refresh(): Promise<void> {
    this.refreshing ??= this.fetch().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private refreshInBackground(): void {
    this.refresh().catch((err: unknown) => this.options.onRefreshFailed?.(err as Error));
  }

  private async fetch(): Promise<void> {
    const wait = this.lastAttemptAt + this.minRefreshIntervalMs - this.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    this.lastAttemptAt = this.now();
    let fetched: Map<string, KeyObject>;
    try {
      const keys = await this.client.getSigningKeys();
      // Parsed once here: handing jsonwebtoken a PEM string would re-parse it on every verification (~5× slower).
      fetched = new Map(
        keys.filter((k) => typeof k.kid === 'string').map((k) => [k.kid, createPublicKey(k.getPublicKey())]),
      );
    } catch (err) {
      throw new SigningKeysUnavailableError(`JWKS fetch failed: ${(err as Error)?.message ?? String(err)}`);
    }
    if (fetched.size === 0) throw new SigningKeysUnavailableError('JWKS holds no signing key with a kid');
    const removed = [...this.keys.keys()].filter((kid) => !fetched.has(kid));
    this.keys = fetched;
    this.fetchedAt = this.now();
    if (removed.length > 0) this.options.onKeysRemoved?.(removed);
  }
}
