import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEmulator, type RunningEmulator } from './emulator';
import { emulatorInfoPath, readEmulatorInfo } from './emulator-info';
import { EmulatorError } from './errors';
import { GraphClient } from './graph-client';
import { GRAPH_APP_ID, GRAPH_ROLE_IDS } from './directory';
import { statePath, type EmulatorState } from './state-store';
import { https, removeDir, tempStateDir } from './emulator.test-helpers';
import { createSelfSignedCertificate } from '@certflow/certs';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function start(stateDir: string): Promise<RunningEmulator> {
  const emulator = await startEmulator({ stateDir });
  cleanups.push(() => emulator.close());
  return emulator;
}

function newDir(): string {
  const dir = tempStateDir();
  cleanups.push(() => removeDir(dir));
  return dir;
}

describe('state directory', () => {
  it('writes emulator.json and emulator-state.json with mode 0600, matching the contract', async () => {
    const dir = newDir();
    const emulator = await start(dir);
    for (const file of [statePath(dir), emulatorInfoPath(dir)])
      expect(statSync(file).mode & 0o777).toBe(0o600);
    const info = readEmulatorInfo(dir);
    const {
      close: _c,
      signAccessToken: _s,
      rotateSigningKey: _r,
      setFaults: _f,
      signInLog: _l,
      clock: _k,
      ...fields
    } = emulator;
    expect(info).toEqual(fields);
    expect(info.url).toMatch(/^https:\/\/localhost:\d+$/);
    expect(info.tenantDomain).toBe('certflow.onmicrosoft.com');
    expect(info.authority).toBe(`${info.url}/${info.tenantId}`);
    expect(info.issuer).toBe(`${info.authority}/v2.0`);
    expect(info.openIdConfigurationUrl).toBe(`${info.authority}/v2.0/.well-known/openid-configuration`);
    expect(info.tokenEndpoint).toBe(`${info.authority}/oauth2/v2.0/token`);
    expect(info.jwksUri).toBe(`${info.authority}/discovery/v2.0/keys`);
    expect(info.graphUrl).toBe(`${info.url}/graph/v1.0`);
    expect(info.caCertificatePath).toBe(join(dir, 'ca', 'ca.crt.pem'));
    // The admin secret is stored only as a hash in the state.
    expect(readFileSync(statePath(dir), 'utf8')).not.toContain(info.admin.clientSecret);
    // `localhost` connects (IPv4 listener, IPv6-first resolvers fall back).
    expect((await https(info, info.jwksUri)).status).toBe(200);
  });

  it('keeps tenant, signing keys, registrations and the admin secret across restarts', async () => {
    const dir = newDir();
    const first = await startEmulator({ stateDir: dir });
    const graph = await GraphClient.connect(first);
    const app = await graph.createApplication({ displayName: 'survives restarts' });
    const keysBefore = (await https(first, first.jwksUri)).json();
    graph.close();
    await first.close();

    const second = await start(dir);
    expect(second.tenantId).toBe(first.tenantId);
    expect(second.admin).toEqual(first.admin);
    expect((await https(second, second.jwksUri)).json().keys).toEqual(
      (keysBefore.keys as { issuer: string }[]).map((k) => ({ ...k, issuer: second.issuer })),
    );
    const again = await GraphClient.connect(second);
    cleanups.push(() => again.close());
    expect((await again.getApplication(app.id)).displayName).toBe('survives restarts');
  });

  it('gives the admin a new secret when emulator.json was lost', async () => {
    const dir = newDir();
    const first = await startEmulator({ stateDir: dir });
    await first.close();
    rmSync(emulatorInfoPath(dir));
    const second = await start(dir);
    expect(second.tenantId).toBe(first.tenantId);
    expect(second.admin.clientId).toBe(first.admin.clientId);
    expect(second.admin.clientSecret).not.toBe(first.admin.clientSecret);
    const graph = await GraphClient.connect(second);
    cleanups.push(() => graph.close());
    expect(await graph.listApplications()).toHaveLength(1);
  });

  it('upgrades a state from an earlier version: the admin gains AppRoleAssignment.ReadWrite.All, once', async () => {
    const dir = newDir();
    await (await startEmulator({ stateDir: dir })).close();
    const assignRoleId = GRAPH_ROLE_IDS['AppRoleAssignment.ReadWrite.All'];
    // What an earlier version saved: Graph without the role, the admin without the assignment.
    const old = JSON.parse(readFileSync(statePath(dir), 'utf8')) as EmulatorState;
    const graphSp = old.servicePrincipals.find((s) => s.appId === GRAPH_APP_ID)!;
    graphSp.builtIn!.appRoles = graphSp.builtIn!.appRoles.filter((r) => r.id !== assignRoleId);
    old.appRoleAssignments = old.appRoleAssignments.filter((a) => a.appRoleId !== assignRoleId);
    writeFileSync(statePath(dir), JSON.stringify(old));

    const upgraded = await start(dir);
    const saved = JSON.parse(readFileSync(statePath(dir), 'utf8')) as EmulatorState;
    expect(statSync(statePath(dir)).mode & 0o777).toBe(0o600);
    const added = saved.appRoleAssignments.filter((a) => a.appRoleId === assignRoleId);
    expect(added).toHaveLength(1);
    // Nothing else changed.
    expect({
      ...saved,
      servicePrincipals: saved.servicePrincipals.map((s) =>
        s.builtIn
          ? {
              ...s,
              builtIn: { ...s.builtIn, appRoles: s.builtIn.appRoles.filter((r) => r.id !== assignRoleId) },
            }
          : s,
      ),
      appRoleAssignments: saved.appRoleAssignments.filter((a) => a !== added[0]),
    }).toEqual(old);

    // The admin's token carries it, and the admin can grant roles again.
    const graph = await GraphClient.connect(upgraded);
    cleanups.push(() => graph.close());
    const roles = JSON.parse(
      Buffer.from((await graph.accessToken()).split('.')[1]!, 'base64url').toString(),
    ).roles;
    // The assignment added back comes last.
    expect(roles).toEqual([
      'Application.ReadWrite.All',
      'AuditLog.Read.All',
      'AppRoleAssignment.ReadWrite.All',
    ]);
    const app = await graph.createApplication({ displayName: 'reader' });
    const sp = await graph.createServicePrincipal(app.appId);
    const graphSpNow = await graph.findServicePrincipalByAppId(GRAPH_APP_ID);
    await graph.assignAppRole({
      principalId: sp.id,
      resourceId: graphSpNow!.id,
      appRoleId: GRAPH_ROLE_IDS['Application.Read.All'],
    });
    await upgraded.close();

    // Loading the upgraded state again changes nothing.
    const before = readFileSync(statePath(dir), 'utf8');
    await start(dir);
    expect(readFileSync(statePath(dir), 'utf8')).toBe(before);
  });

  it.each([
    ['half-written JSON', '{"half": '],
    ['a different shape', '{"version":1,"tenant":{}}'],
    ['an empty file', ''],
  ])(
    'refuses to start on a damaged emulator-state.json (%s), naming the file and leaving it alone',
    async (_name, content) => {
      const dir = newDir();
      writeFileSync(statePath(dir), content);
      const failure = await startEmulator({ stateDir: dir }).catch((err: unknown) => err);
      expect(failure).toBeInstanceOf(EmulatorError);
      expect((failure as EmulatorError).code).toBe('ERR_STATE_DAMAGED');
      expect((failure as Error).message).toContain(statePath(dir));
      expect(readFileSync(statePath(dir), 'utf8')).toBe(content);
      expect(existsSync(emulatorInfoPath(dir))).toBe(false);
    },
  );

  it('refuses a state whose signing key no longer matches its certificate', async () => {
    const dir = newDir();
    await (await startEmulator({ stateDir: dir })).close();
    const state = JSON.parse(readFileSync(statePath(dir), 'utf8'));
    const other = JSON.parse(readFileSync(statePath(dir), 'utf8'));
    state.signingKeys[0].privateKeyPem = createSelfSignedCertificate({ commonName: 'x' }).privateKeyPem;
    writeFileSync(statePath(dir), JSON.stringify(state));
    await expect(startEmulator({ stateDir: dir })).rejects.toMatchObject({
      code: 'ERR_STATE_DAMAGED',
      message: expect.stringContaining('signingKeys[0]'),
    });
    expect(other.signingKeys[0].privateKeyPem).not.toBe(state.signingKeys[0].privateKeyPem);
  });

  it('refuses a damaged emulator.json, and readEmulatorInfo explains a missing one', async () => {
    const dir = newDir();
    expect(() => readEmulatorInfo(dir)).toThrow(expect.objectContaining({ code: 'ERR_INFO_MISSING' }));
    await (await startEmulator({ stateDir: dir })).close();
    writeFileSync(emulatorInfoPath(dir), '{"url": 1');
    expect(() => readEmulatorInfo(dir)).toThrow(
      expect.objectContaining({
        code: 'ERR_STATE_DAMAGED',
        message: expect.stringContaining('emulator.json'),
      }),
    );
    await expect(startEmulator({ stateDir: dir })).rejects.toMatchObject({ code: 'ERR_STATE_DAMAGED' });
  });

  it('validates its options', async () => {
    await expect(startEmulator({ stateDir: '' })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTIONS' });
    await expect(startEmulator({ stateDir: newDir(), port: 70000 })).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTIONS',
    });
    await expect(
      startEmulator({ stateDir: newDir(), tokenLifetimeSeconds: { min: 10, max: 5 } }),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_OPTIONS' });
  });

  it('reports a port in use as ERR_LISTEN_FAILED', async () => {
    const dir = newDir();
    const first = await start(dir);
    const port = Number(new URL(first.url).port);
    await expect(startEmulator({ stateDir: newDir(), port })).rejects.toMatchObject({
      code: 'ERR_LISTEN_FAILED',
    });
  });

  it('issues tokens with a configured fixed lifetime', async () => {
    const dir = newDir();
    const emulator = await startEmulator({ stateDir: dir, tokenLifetimeSeconds: 600 });
    cleanups.push(() => emulator.close());
    const res = await https(emulator, emulator.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: emulator.admin.clientId,
        client_secret: emulator.admin.clientSecret,
        scope: 'https://graph.microsoft.com/.default',
      }).toString(),
    });
    expect(res.json().expires_in).toBe(600);
  });
});
