/**
 * The key store's policy (re-fetch on an unknown kid, stale keys on failure, removed kids
 * reported) against the real emulator's JWKS, through jwks-rsa; the emulator's address is
 * swapped for a dead one to make the IdP unreachable.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JwksClient } from 'jwks-rsa';
import { startEmulator, type RunningEmulator } from '@certflow/entra-emulator';
import {
  SigningKeyStore,
  SigningKeysUnavailableError,
  UnknownSigningKeyError,
} from '@certflow/nest-entra-auth';
import { kidOf } from '../../src/testing/access-tokens.test-helpers';

let stateDir: string;
let emulator: RunningEmulator;
let agent: Agent;
let kid: string;

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'certflow-api-keys-'));
  emulator = await startEmulator({ stateDir, port: 0 });
  agent = new Agent({ ca: readFileSync(emulator.caCertificatePath, 'utf8') });
  kid = kidOf(await emulator.signAccessToken({ exp: Math.floor(Date.now() / 1000) + 60 }));
});

afterAll(async () => {
  agent?.destroy();
  await emulator?.close();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

/** A JWKS client whose target can be switched to a dead address, and which counts its fetches. */
function switchableClient() {
  const real = new JwksClient({
    jwksUri: emulator.jwksUri,
    cache: false,
    requestAgent: agent,
    timeout: 5_000,
  });
  const dead = new JwksClient({
    jwksUri: 'https://127.0.0.1:1/keys',
    cache: false,
    requestAgent: agent,
    timeout: 5_000,
  });
  const state = { reachable: true, fetches: 0 };
  return {
    state,
    client: {
      getSigningKeys: () => {
        state.fetches++;
        return (state.reachable ? real : dead).getSigningKeys();
      },
    },
  };
}

describe('SigningKeyStore', () => {
  it('is not loaded before the first fetch, and is after', async () => {
    const { client } = switchableClient();
    const store = new SigningKeyStore(client, { minRefreshIntervalMs: 0 });
    expect(store.loaded).toBe(false);
    await store.refresh();
    expect(store.loaded).toBe(true);
    expect(store.kids).toContain(kid);
  });

  it('fetches once for a known kid, however often it is asked', async () => {
    const { client, state } = switchableClient();
    const store = new SigningKeyStore(client, { minRefreshIntervalMs: 0 });
    const keys = await Promise.all([store.keyFor(kid), store.keyFor(kid), store.keyFor(kid)]);
    expect(keys[0]!.asymmetricKeyType).toBe('rsa');
    expect(state.fetches).toBe(1);
  });

  it('re-fetches for an unknown kid, then refuses it as unknown', async () => {
    const { client, state } = switchableClient();
    const store = new SigningKeyStore(client, { minRefreshIntervalMs: 0 });
    await store.keyFor(kid);
    await expect(store.keyFor('not-published')).rejects.toBeInstanceOf(UnknownSigningKeyError);
    expect(state.fetches).toBe(2);
  });

  it('serves the keys it knows while the JWKS is unreachable, and answers unavailable for a kid never seen', async () => {
    const { client, state } = switchableClient();
    const failures: Error[] = [];
    const store = new SigningKeyStore(client, {
      minRefreshIntervalMs: 0,
      maxAgeMs: 0,
      onRefreshFailed: (e) => failures.push(e),
    });
    await store.keyFor(kid);
    state.reachable = false;
    expect((await store.keyFor(kid)).asymmetricKeyType).toBe('rsa'); // stale, refresh in the background
    await expect(store.keyFor('never-seen')).rejects.toBeInstanceOf(SigningKeysUnavailableError);
    expect(store.loaded).toBe(true);
  });

  it('answers unavailable, not unknown, when no key was ever fetched', async () => {
    const { client, state } = switchableClient();
    state.reachable = false;
    const store = new SigningKeyStore(client, { minRefreshIntervalMs: 0 });
    await expect(store.keyFor(kid)).rejects.toBeInstanceOf(SigningKeysUnavailableError);
    expect(store.loaded).toBe(false);
  });

  it('reports the kids that left the JWKS (the verified-token cache then forgets their tokens)', async () => {
    const otherDir = mkdtempSync(join(tmpdir(), 'certflow-api-keys-other-'));
    const other = await startEmulator({ stateDir: otherDir, port: 0 });
    try {
      const otherAgent = new Agent({ ca: readFileSync(other.caCertificatePath, 'utf8') });
      const first = new JwksClient({ jwksUri: emulator.jwksUri, cache: false, requestAgent: agent });
      const second = new JwksClient({ jwksUri: other.jwksUri, cache: false, requestAgent: otherAgent });
      let current = first;
      const removed: string[][] = [];
      const store = new SigningKeyStore(
        { getSigningKeys: () => current.getSigningKeys() },
        { minRefreshIntervalMs: 0, onKeysRemoved: (kids) => removed.push(kids) },
      );
      await store.refresh();
      const before = store.kids;
      current = second; // the same tenant now publishes entirely different keys
      await store.refresh();
      otherAgent.destroy();
      expect(removed).toEqual([before]);
      expect(store.kids.some((k) => before.includes(k))).toBe(false);
    } finally {
      await other.close();
      rmSync(otherDir, { recursive: true, force: true });
    }
  });

  it('joins concurrent fetches for unknown kids into one', async () => {
    const { client, state } = switchableClient();
    const store = new SigningKeyStore(client, { minRefreshIntervalMs: 0 });
    const results = await Promise.allSettled(['x1', 'x2', 'x3', kid].map((k) => store.keyFor(k)));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected', 'fulfilled']);
    expect(state.fetches).toBe(1);
  });
});
