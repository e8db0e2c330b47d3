/**
 * A {@link TokenStore} in Redis (PARTNER_TOKEN_STORE=redis, the default when PARTNER_REDIS_URL
 * is set), so that many replicas share one token per lifetime. Commands fail fast while Redis
 * is unreachable (no offline queue, no retries) and the client keeps reconnecting in the
 * background; at start-up a command waits (bounded) for the first connection.
 */
import { Redis } from 'ioredis';
import { ConfigError, envUrl, envValue } from './env';
import type { TokenStore, TokenStoreBackend } from './token-store';

const RELEASE_LOCK = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/** How long a command waits for the first connection before failing (ms). */
const FIRST_CONNECTION_MS = 2_000;

export class RedisTokenStore implements TokenStore {
  readonly name = 'Redis';
  private readonly redis: Redis;

  constructor(url: string) {
    this.redis = new Redis(url, {
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 2_000,
      retryStrategy: (times) => Math.min(times * 200, 2_000),
    });
    this.redis.on('error', () => {}); // reported through failed commands (once), not per reconnect
  }

  async get(key: string): Promise<string | undefined> {
    await this.connected();
    return (await this.redis.get(key)) ?? undefined;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    await this.connected();
    await this.redis.set(key, value, 'PX', ttlMs);
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    await this.connected();
    return (await this.redis.set(key, value, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async deleteIfEquals(key: string, value: string): Promise<void> {
    await this.connected();
    await this.redis.eval(RELEASE_LOCK, 1, key, value);
  }

  async has(key: string): Promise<boolean> {
    await this.connected();
    return (await this.redis.exists(key)) > 0;
  }

  close(): void {
    this.redis.disconnect();
  }

  /** At start-up, waits (bounded) for the first connection; during an outage fails fast. */
  private async connected(): Promise<void> {
    const status = this.redis.status;
    if (status === 'ready' || (status !== 'wait' && status !== 'connecting' && status !== 'connect')) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.redis.off('ready', done);
        resolve();
      };
      const timer = setTimeout(done, FIRST_CONNECTION_MS);
      this.redis.once('ready', done);
    });
  }
}

/** PARTNER_TOKEN_STORE=redis: PARTNER_REDIS_URL (redis:// or rediss://) is required. */
export const redisTokenStore: TokenStoreBackend = {
  remote: true,
  variables: ['PARTNER_REDIS_URL'],
  configure: (env) => {
    const raw = envValue(env, 'PARTNER_REDIS_URL');
    if (raw === undefined)
      throw new ConfigError(
        'PARTNER_REDIS_URL',
        'is required with PARTNER_TOKEN_STORE=redis (e.g. redis://127.0.0.1:6379)',
      );
    return { url: envUrl('PARTNER_REDIS_URL', raw, ['redis:', 'rediss:']).href };
  },
  open: (settings) => new RedisTokenStore(settings['url']!),
};
