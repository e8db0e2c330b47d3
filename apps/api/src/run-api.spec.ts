import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '@certflow/entra-emulator';
import { runApi } from './run-api';

let stateDir: string;
let emulator: RunningEmulator;

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'certflow-api-run-'));
  emulator = await startEmulator({ stateDir, port: 0 });
});

afterAll(async () => {
  await emulator?.close();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

function capture() {
  const out = { stdout: [] as string[], stderr: [] as string[] };
  return {
    out,
    output: {
      stdout: (l: string) => void out.stdout.push(l),
      stderr: (l: string) => void out.stderr.push(l),
    },
  };
}

describe('runApi (what main.ts runs)', () => {
  it('prints exactly one stdout line, the listening event with the bound port', async () => {
    const { out, output } = capture();
    // Against a reachable authority: start-up reads its OpenID metadata, with nothing to warn about.
    const result = await runApi(
      {
        PORT: '0',
        ENTRA_INSTANCE: emulator.url,
        ENTRA_TENANT_ID: emulator.tenantId,
        ENTRA_CA_FILE: emulator.caCertificatePath,
        API_AUDIENCES: 'api://x',
      },
      output,
    );
    if (result.exitCode !== 0) throw result.error;
    try {
      expect(out.stdout).toHaveLength(1);
      const line = JSON.parse(out.stdout[0]!) as { event: string; url: string };
      expect(line).toEqual({ event: 'listening', url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) });
      expect(line.url).not.toMatch(/:0$/);
      expect(await (await fetch(`${line.url}/health`)).json()).toEqual({ status: 'ok' });
      const logs = out.stderr.map((l) => JSON.parse(l) as { level: string; message?: string });
      expect(logs.length).toBeGreaterThan(0);
      expect(logs.filter((l) => l.level === 'error' || l.level === 'warn')).toEqual([]);
    } finally {
      await result.api.close();
    }
  });

  it.each([
    [{ API_AUDIENCES: 'a' }, 'ENTRA_TENANT_ID'],
    [{ ENTRA_TENANT_ID: 'not-a-guid', API_AUDIENCES: 'a' }, 'ENTRA_TENANT_ID'],
    [{ ENTRA_TENANT_ID: '8f2b1c1e-5a4d-4c3b-9e8f-0a1b2c3d4e5f', API_AUDIENCES: 'a', PORT: 'abc' }, 'PORT'],
    [
      {
        ENTRA_TENANT_ID: '8f2b1c1e-5a4d-4c3b-9e8f-0a1b2c3d4e5f',
        API_AUDIENCES: 'a',
        NODE_ENV: 'production',
        CERTFLOW_CLOCK_FILE: '/srv/stack/clock.json',
      },
      'CERTFLOW_CLOCK_FILE',
    ],
  ])('fails to start with %j, naming %s on stderr and nothing on stdout', async (env, variable) => {
    const { out, output } = capture();
    const result = await runApi(env, output);
    expect(result.exitCode).toBe(1);
    expect(out.stdout).toEqual([]);
    expect(out.stderr).toHaveLength(1);
    const line = JSON.parse(out.stderr[0]!) as Record<string, string>;
    expect(line).toMatchObject({ event: 'startup_failed', variable });
    expect(line['message']).toMatch(new RegExp(`^${variable} `));
  });

  it('reports a port already in use without printing the listening line', async () => {
    const first = await runApi(
      { PORT: '0', ENTRA_TENANT_ID: '8f2b1c1e-5a4d-4c3b-9e8f-0a1b2c3d4e5f', API_AUDIENCES: 'a' },
      capture().output,
    );
    if (first.exitCode !== 0) throw first.error;
    try {
      const port = new URL(first.api.url).port;
      const { out, output } = capture();
      const second = await runApi(
        { PORT: port, ENTRA_TENANT_ID: '8f2b1c1e-5a4d-4c3b-9e8f-0a1b2c3d4e5f', API_AUDIENCES: 'a' },
        output,
      );
      expect(second.exitCode).toBe(1);
      expect(out.stdout).toEqual([]);
      expect(out.stderr.at(-1)).toMatch(/"event":"startup_failed".*EADDRINUSE/);
    } finally {
      await first.api.close();
    }
  });
});
