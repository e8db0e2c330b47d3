/**
 * The `onRequest` hook (for tests that act at an exact point of a client's conversation): it
 * sees each request before it is handled, may hold it, may keep it from being handled at all,
 * and may act after it was handled but before the answer leaves. Requests refused by the host
 * check never reach it.
 */
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from './emulator';
import { https, removeDir, tempStateDir } from './emulator.test-helpers';
import { sendJson } from './http-io';

let emulator: RunningEmulator;
const stateDir = tempStateDir();
const seen: string[] = [];
let mode: 'pass' | 'answer-itself' | 'after-handling' = 'pass';
const answered: string[] = [];

beforeAll(async () => {
  emulator = await startEmulator({
    stateDir,
    onRequest: async (req, res) => {
      seen.push(`${req.method} ${req.url}`);
      await new Promise((r) => setTimeout(r, 10)); // the request waits for the hook
      if (mode === 'answer-itself') {
        sendJson(res, 503, { error: 'held by the test' });
        return false;
      }
      if (mode === 'after-handling') {
        const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
        res.end = ((...args: unknown[]) => {
          answered.push(String(res.statusCode));
          return end(...args);
        }) as ServerResponse['end'];
      }
      return undefined;
    },
  });
});
afterAll(async () => {
  await emulator?.close();
  removeDir(stateDir);
});

describe('onRequest', () => {
  const discovery = () => `${emulator.url}/${emulator.tenantId}/v2.0/.well-known/openid-configuration`;

  it('sees each request before it is handled; passing it on leaves the answer as it was', async () => {
    mode = 'pass';
    const answer = await https(emulator, discovery());
    expect(answer.status).toBe(200);
    expect(seen.at(-1)).toBe(`GET /${emulator.tenantId}/v2.0/.well-known/openid-configuration`);
  });

  it('false: the emulator does not handle the request', async () => {
    mode = 'answer-itself';
    const answer = await https(emulator, discovery());
    expect(answer.status).toBe(503);
    expect(answer.json()).toEqual({ error: 'held by the test' });
  });

  it('can act after the emulator handled the request, before the answer leaves', async () => {
    mode = 'after-handling';
    expect((await https(emulator, discovery())).status).toBe(200);
    expect(answered).toEqual(['200']);
  });

  it('requests refused by the host check never reach it', async () => {
    mode = 'pass';
    const before = seen.length;
    const refused = await https(emulator, discovery(), { headers: { host: 'rebound.example' } });
    expect(refused.status).toBe(421);
    expect(seen.length).toBe(before);
  });
});
