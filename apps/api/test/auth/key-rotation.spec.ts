/**
 * Signing-key rotation under continuous requests: the emulator promotes its published "next"
 * key and publishes a new one while workers keep calling the API with freshly signed tokens.
 * Not one request may fail. Progress is driven by counts of completed requests, not by time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '@certflow/entra-emulator';
import type { RunningApi } from '../../src/api-app';
import { startApiWithEmulator, type ApiWithEmulator } from '../../src/testing/api-with-emulator.test-helpers';
import { appTokenClaims, kidOf } from '../../src/testing/access-tokens.test-helpers';
import { callApi } from '../../src/testing/http.test-helpers';

let emulator: RunningEmulator;
let api: RunningApi;
let stack: ApiWithEmulator | undefined;

beforeAll(async () => {
  stack = await startApiWithEmulator('rotation');
  ({ emulator, api } = stack);
});

afterAll(async () => {
  await stack?.close();
});

const freshToken = () => emulator.signAccessToken(appTokenClaims(emulator));

describe('signing-key rotation', () => {
  it('fails no request while the key is rotated three times under continuous load', async () => {
    const WORKERS = 8;
    const ROTATIONS = 3;
    const REQUESTS_BETWEEN_ROTATIONS = 40;
    const failures: { status: number; code: unknown }[] = [];
    const kidsUsed = new Set<string>();
    let completed = 0;
    let stop = false;
    const issuedBeforeRotation = await freshToken();
    expect((await callApi(api.url, '/orders', issuedBeforeRotation)).status).toBe(200);

    const worker = async () => {
      while (!stop) {
        const token = await freshToken();
        kidsUsed.add(kidOf(token));
        const { status, body } = await callApi(api.url, '/orders', token);
        completed++;
        if (status !== 200) failures.push({ status, code: body['code'] });
      }
    };
    const untilCompleted = async (target: number) => {
      while (completed < target) await new Promise((resolve) => setImmediate(resolve));
    };

    const workers = Array.from({ length: WORKERS }, worker);
    const rotatedTo: string[] = [];
    for (let i = 0; i < ROTATIONS; i++) {
      await untilCompleted(completed + REQUESTS_BETWEEN_ROTATIONS);
      rotatedTo.push((await emulator.rotateSigningKey()).kid);
    }
    await untilCompleted(completed + REQUESTS_BETWEEN_ROTATIONS);
    stop = true;
    await Promise.all(workers);

    expect(failures).toEqual([]);
    expect(completed).toBeGreaterThanOrEqual((ROTATIONS + 1) * REQUESTS_BETWEEN_ROTATIONS);
    expect(new Set(rotatedTo).size).toBe(ROTATIONS);
    for (const kid of rotatedTo) expect(kidsUsed).toContain(kid);
    // A token signed before the rotations, by a key now retired but still published, is still good.
    expect((await callApi(api.url, '/orders', issuedBeforeRotation)).status).toBe(200);
  });
});
