/**
 * For the benchmark: the Entra ID emulator as a child process (`tools/entra-emulator/dist/main.js`;
 * an app does not import tools), an API registration with an app role, and the partner's app
 * registration holding a certificate made here (uploaded through the emulator's Graph API over
 * HTTPS, as the API owner does in step 4).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  createSelfSignedCertificate,
  fileKeySigner,
  parseCertificate,
  type KeySigner,
  type ParsedCertificate,
} from '@certflow/certs';

export interface BenchAuthority {
  /** `https://localhost:PORT` */
  instance: string;
  tenantId: string;
  caPem: string;
  /** The partner's client id and its registered certificate (with the private key). */
  clientId: string;
  credential: { privateKeyPem: string; certificate: ParsedCertificate; signer: KeySigner };
  /** The API's scope, `<identifier URI>/.default`. */
  scope: string;
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

export async function startBenchAuthority(
  emulatorMain: string,
  stateDir: string,
  identifierUri: string,
): Promise<BenchAuthority> {
  const child = spawn(process.execPath, [emulatorMain, '--port', '0', '--state-dir', stateDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await listening(child);
    const info = JSON.parse(readFileSync(join(stateDir, 'emulator.json'), 'utf8')) as EmulatorJson;
    const caPem = readFileSync(info.caCertificatePath, 'utf8');
    const https = (method: string, url: string, body?: string, headers: Record<string, string> = {}) =>
      send(caPem, method, url, body, headers);
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: info.admin.clientId,
      client_secret: info.admin.clientSecret,
      scope: 'https://graph.microsoft.com/.default',
    }).toString();
    const admin = (
      (await https('POST', info.tokenEndpoint, form, {
        'content-type': 'application/x-www-form-urlencoded',
      })) as {
        access_token: string;
      }
    ).access_token;
    const graph = async (method: string, path: string, body: unknown) =>
      (await https(method, `${info.graphUrl}${path}`, JSON.stringify(body), {
        'content-type': 'application/json',
        authorization: `Bearer ${admin}`,
      })) as Record<string, unknown>;

    const roleId = '0b6c1a52-8f3e-4d7a-9c21-5e4f3a2b1c0d';
    const api = await graph('POST', '/applications', {
      displayName: 'certflow orders (token cache bench)',
      identifierUris: [identifierUri],
      appRoles: [
        {
          id: roleId,
          value: 'Orders.Read',
          displayName: 'Orders.Read',
          description: 'read orders',
          allowedMemberTypes: ['Application'],
          isEnabled: true,
        },
      ],
      api: { requestedAccessTokenVersion: 2 },
    });
    const apiSp = await graph('POST', '/servicePrincipals', { appId: api['appId'] });
    const pair = createSelfSignedCertificate({ commonName: 'token-cache-bench', days: 2 });
    const certificate = parseCertificate(pair.certificatePem);
    const partner = await graph('POST', '/applications', {
      displayName: 'partner (token cache bench)',
      keyCredentials: [
        {
          type: 'AsymmetricX509Cert',
          usage: 'Verify',
          key: certificate.der.toString('base64'),
          displayName: 'bench',
        },
      ],
    });
    const partnerSp = await graph('POST', '/servicePrincipals', { appId: partner['appId'] });
    await graph('POST', `/servicePrincipals/${String(apiSp['id'])}/appRoleAssignedTo`, {
      principalId: partnerSp['id'],
      resourceId: apiSp['id'],
      appRoleId: roleId,
    });
    return {
      instance: info.url,
      tenantId: info.tenantId,
      caPem,
      clientId: String(partner['appId']),
      credential: {
        privateKeyPem: pair.privateKeyPem,
        certificate,
        signer: fileKeySigner(pair.privateKeyPem, 'the benchmark partner key'),
      },
      scope: `${identifierUri}/.default`,
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
