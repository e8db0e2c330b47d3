/**
 * For the benchmark: the Entra ID emulator as a child process (`tools/entra-emulator/dist/main.js`;
 * an app does not import tools), an API and a partner registered through its Graph API over
 * HTTPS, and a real access token for the partner (client secret: the benchmark measures the
 * API's validation, not how the partner authenticated).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { AppRole } from '../src/app-roles';

export interface BenchAuthority {
  instance: string;
  tenantId: string;
  caFile: string;
  apiAppId: string;
  /** A token for the partner, holding Orders.Read on the API. */
  accessToken: string;
  stop(): Promise<void>;
}

interface EmulatorJson {
  url: string;
  tenantId: string;
  tokenEndpoint: string;
  graphUrl: string;
  caCertificatePath: string;
  admin: { clientId: string; clientSecret: string };
}

export async function startBenchAuthority(emulatorMain: string, stateDir: string): Promise<BenchAuthority> {
  const child = spawn(process.execPath, [emulatorMain, '--port', '0', '--state-dir', stateDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await listening(child);
    const info = JSON.parse(readFileSync(join(stateDir, 'emulator.json'), 'utf8')) as EmulatorJson;
    const ca = readFileSync(info.caCertificatePath, 'utf8');
    const https = (method: string, url: string, body?: string, headers: Record<string, string> = {}) =>
      send(ca, method, url, body, headers);
    const token = async (form: Record<string, string>) => {
      const body = new URLSearchParams({ grant_type: 'client_credentials', ...form }).toString();
      return (
        (await https('POST', info.tokenEndpoint, body, {
          'content-type': 'application/x-www-form-urlencoded',
        })) as { access_token: string }
      ).access_token;
    };
    const admin = await token({
      client_id: info.admin.clientId,
      client_secret: info.admin.clientSecret,
      scope: 'https://graph.microsoft.com/.default',
    });
    const graph = async (path: string, body: unknown) =>
      (await https('POST', `${info.graphUrl}${path}`, JSON.stringify(body), {
        'content-type': 'application/json',
        authorization: `Bearer ${admin}`,
      })) as Record<string, unknown>;

    const roleId = '6c7a3f2e-1d4b-4e8a-9b0c-2d3e4f5a6b7c';
    const api = await graph('/applications', {
      displayName: 'certflow orders (bench)',
      identifierUris: ['api://certflow-orders-bench'],
      appRoles: [
        {
          id: roleId,
          value: AppRole.OrdersRead,
          displayName: AppRole.OrdersRead,
          description: 'read orders',
          allowedMemberTypes: ['Application'],
          isEnabled: true,
        },
      ],
      api: { requestedAccessTokenVersion: 2 },
    });
    const apiSp = await graph('/servicePrincipals', { appId: api['appId'] });
    const partner = await graph('/applications', { displayName: 'partner (bench)' });
    const partnerSp = await graph('/servicePrincipals', { appId: partner['appId'] });
    await graph(`/servicePrincipals/${String(apiSp['id'])}/appRoleAssignedTo`, {
      principalId: partnerSp['id'],
      resourceId: apiSp['id'],
      appRoleId: roleId,
    });
    const secret = await graph(`/applications/${String(partner['id'])}/addPassword`, {
      passwordCredential: { displayName: 'bench' },
    });
    const accessToken = await token({
      client_id: String(partner['appId']),
      client_secret: String(secret['secretText']),
      scope: 'api://certflow-orders-bench/.default',
    });
    return {
      instance: info.url,
      tenantId: info.tenantId,
      caFile: info.caCertificatePath,
      apiAppId: String(api['appId']),
      accessToken,
      stop: () => stop(child),
    };
  } catch (err) {
    await stop(child);
    throw err;
  }
}

function listening(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (line.includes('"listening"')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`entra-emulator exited with ${code} before listening`)));
    child.once('error', reject);
  });
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

function send(
  ca: string,
  method: string,
  url: string,
  body: string | undefined,
  headers: Record<string, string>,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, ca, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        if ((res.statusCode ?? 0) >= 300)
          reject(new Error(`${method} ${url} answered ${res.statusCode}: ${text.slice(0, 300)}`));
        else resolve(text === '' ? {} : JSON.parse(text));
      });
    });
    req.on('error', reject).end(body);
  });
}
