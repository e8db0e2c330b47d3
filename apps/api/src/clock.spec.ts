/**
 * The API judges exp and nbf by its clock: an injected one (EntraAuthModule's `clock`), and the
 * process's own from CERTFLOW_CLOCK_FILE, followed while it runs. Tokens are signed by the
 * emulator's real key and fetched JWKS over HTTPS; nothing is mocked.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLOCK_FILE_POLL_MS, OffsetClock, writeClockFile } from '@certflow/clock';
import { startEmulator, type RunningEmulator } from '@certflow/entra-emulator';
import { startApi, type RunningApi } from './api-app';
import { runApi } from './run-api';
import { appTokenClaims } from './testing/access-tokens.test-helpers';
import { apiConfigFor } from './testing/api-with-emulator.test-helpers';

const HOUR = 3_600_000;
let stateDir: string;
let emulator: RunningEmulator;

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'certflow-api-clock-'));
  emulator = await startEmulator({ stateDir, port: 0 });
});

afterAll(async () => {
  await emulator?.close();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

/** A token of the emulator's real key, valid for ten more real minutes unless overridden. */
function token(overrides: Record<string, unknown> = {}): Promise<string> {
  return emulator.signAccessToken(
    appTokenClaims(emulator, { exp: Math.floor(Date.now() / 1000) + 600, ...overrides }),
  );
}

async function orders(api: RunningApi, bearer: string): Promise<{ status: number; code: unknown }> {
  const response = await fetch(`${api.url}/orders`, { headers: { authorization: `Bearer ${bearer}` } });
  const body = (await response.json()) as Record<string, unknown>;
  return { status: response.status, code: body['code'] };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('an injected clock', () => {
  const clock = new OffsetClock();
  let api: RunningApi;

  beforeAll(async () => {
    api = await startApi({ ...apiConfigFor(emulator), clock }, { logger: false });
  });
  afterAll(() => api?.close());

  it('decides exp, for a token verified before (cached) and for a new one', async () => {
    const seen = await token();
    expect(await orders(api, seen)).toMatchObject({ status: 200 });
    clock.set(HOUR);
    const unseen = await token();
    expect(await orders(api, seen)).toEqual({ status: 401, code: 'ERR_TOKEN_EXPIRED' });
    expect(await orders(api, unseen)).toEqual({ status: 401, code: 'ERR_TOKEN_EXPIRED' });
    clock.set(0);
    expect(await orders(api, seen)).toMatchObject({ status: 200 });
    expect(await orders(api, unseen)).toMatchObject({ status: 200 });
  });

  it('decides nbf', async () => {
    const now = Math.floor(Date.now() / 1000);
    const later = await token({ nbf: now + 3600, iat: now + 3600, exp: now + 7200 });
    clock.set(0);
    expect(await orders(api, later)).toEqual({ status: 401, code: 'ERR_TOKEN_NOT_YET_VALID' });
    clock.set(HOUR);
    expect(await orders(api, later)).toMatchObject({ status: 200 });
    clock.set(0);
    expect(await orders(api, later)).toEqual({ status: 401, code: 'ERR_TOKEN_NOT_YET_VALID' });
  });
});

describe('CERTFLOW_CLOCK_FILE', () => {
  it('shifts the clock of the process (said in one log line), and is followed while it runs', async () => {
    const file = join(stateDir, 'clock.json');
    writeClockFile(file, HOUR);
    const stderr: string[] = [];
    const result = await runApi(
      {
        PORT: '0',
        ENTRA_INSTANCE: emulator.url,
        ENTRA_TENANT_ID: emulator.tenantId,
        ENTRA_CA_FILE: emulator.caCertificatePath,
        API_AUDIENCES: appTokenClaims(emulator)['aud'] as string,
        CERTFLOW_CLOCK_FILE: file,
      },
      { stdout: () => undefined, stderr: (line) => void stderr.push(line) },
    );
    if (result.exitCode !== 0) throw result.error;
    try {
      const notices = stderr
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l['event'] === 'clock_shifted');
      expect(notices).toEqual([
        expect.objectContaining({
          offsetMs: HOUR,
          message: `clock: shifted by +1h from the real time and follows CERTFLOW_CLOCK_FILE=${file}`,
        }),
      ]);
      const bearer = await token();
      expect(await orders(result.api, bearer)).toEqual({ status: 401, code: 'ERR_TOKEN_EXPIRED' });
      writeClockFile(file, 0);
      await pause(CLOCK_FILE_POLL_MS * 3);
      expect(await orders(result.api, bearer)).toMatchObject({ status: 200 });
    } finally {
      await result.api.close();
    }
  });
});
