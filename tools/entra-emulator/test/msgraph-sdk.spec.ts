/**
 * Microsoft's Graph SDK for JavaScript against the emulator's Graph API, with a token the
 * emulator issued itself (scope https://graph.microsoft.com/.default, Application.ReadWrite.All):
 * create, get with $select, list with $filter, addPassword / removePassword, patch, a service
 * principal, and a 404 as the SDK's GraphError. Run as a child process so that the SDK's own
 * fetch trusts the development CA through NODE_EXTRA_CA_CERTS, as a user's program would.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { runJsonChild, startFixture, type Fixture } from '../src/emulator.test-helpers';

const SCRIPT = join(__dirname, 'msgraph_sdk_client.cjs');

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f?.close();
});

async function runSdk(token: string): Promise<Record<string, unknown>> {
  const graphUrl = new URL(f.emulator.graphUrl);
  const input = {
    graphBase: f.emulator.graphUrl.replace(/v1\.0\/?$/, ''),
    host: graphUrl.hostname, // the SDK compares host names without the port
    token,
  };
  return runJsonChild<Record<string, unknown>>(process.execPath, [SCRIPT], input, {
    PATH: process.env.PATH,
    NODE_EXTRA_CA_CERTS: f.emulator.caCertificatePath,
  });
}

describe("Microsoft's Graph SDK (@microsoft/microsoft-graph-client) against the emulator", () => {
  it('manages an application with the Graph token the emulator issued', async () => {
    const out = await runSdk(await f.graph.accessToken());
    const created = out.created as { id: string; appId: string; displayName: string };
    expect(created.displayName).toBe('graph sdk app');
    expect(out.got).toMatchObject({ id: created.id, appId: created.appId, displayName: 'graph sdk app' });
    expect(out.filtered).toEqual([created.id]);
    expect(out.password).toMatchObject({ hasSecretText: true });
    expect(out.afterRemove).toBe(0);
    expect(out.renamed).toBe('renamed by the sdk');
    expect(out.servicePrincipal).toEqual({ appId: created.appId });
    expect(out.notFound).toEqual({ statusCode: 404, code: 'Request_ResourceNotFound' });
    expect((await f.graph.getApplication(created.id)).displayName).toBe('renamed by the sdk');
  });

  it('a token the emulator did not issue is refused through the SDK', async () => {
    await expect(runSdk('eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.')).rejects.toThrow(
      /exited 1: .*Access token validation failure/,
    );
  });
});
