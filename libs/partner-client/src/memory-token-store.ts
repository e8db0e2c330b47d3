/**
 * A {@link TokenStore} in this process's memory (PARTNER_TOKEN_STORE=memory): what the Redis
 * store does, for one replica or for tests, with nothing to run. Expired values are dropped
 * when read.
 */
import type { TokenStore, TokenStoreBackend } from './token-store';

export class MemoryTokenStore implements TokenStore {
  readonly name = 'memory';
  private readonly values = new Map<string, { value: string; expiresAt: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  async get(key: string): Promise<string | undefined> {
    return this.live(key)?.value;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    this.values.set(key, { value, expiresAt: this.now() + ttlMs });
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    if (this.live(key)) return false;
    this.values.set(key, { value, expiresAt: this.now() + ttlMs });
    return true;
  }

  async deleteIfEquals(key: string, value: string): Promise<void> {
    if (this.live(key)?.value === value) this.values.delete(key);
  }

  async has(key: string): Promise<boolean> {
    return this.live(key) !== undefined;
  }

  close(): void {
    this.values.clear();
  }

  private live(key: string): { value: string; expiresAt: number } | undefined {
    const entry = this.values.get(key);
    if (entry && entry.expiresAt <= this.now()) {
      this.values.delete(key);
      return undefined;
    }
    return entry;
  }
}

/** PARTNER_TOKEN_STORE=memory: no settings; the tokens never leave the process. */
export const memoryTokenStore: TokenStoreBackend = {
  remote: false,
  variables: [],
  configure: () => ({}),
  open: () => new MemoryTokenStore(),
};
