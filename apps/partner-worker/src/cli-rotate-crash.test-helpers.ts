/**
 * The crash test's machinery (cli-rotate-crash.spec.ts): lanes that share nothing (each its own
 * in-process emulator, API registration and verifying API), a partner of its own per kill point,
 * the built CLI run plain or under strace with a SIGKILL injected at the N-th call of one
 * mutating file syscall, and an emulator hook that kills the CLI when its i-th request arrives or
 * after the emulator has handled it but before the answer leaves.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { join, resolve } from 'node:path';
import { parseCertificate } from '@certflow/certs';
import {
  GRAPH_APP_ID,
  GRAPH_ROLE_IDS,
  GraphClient,
  provisionApiAndPartner,
  startEmulator,
  type RunningEmulator,
} from '@certflow/entra-emulator';
import { CertificateStore } from '@certflow/partner-client';
import {
  createSoftHsmToken,
  json,
  startHttpServer,
  type SoftHsmToken,
  type TestServer,
} from '@certflow/testing';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { fetchText } from './facade.test-helpers';

const PROJECT = resolve(__dirname, '..');
export const WORKSPACE = resolve(PROJECT, '../..');
export const MAIN = join(PROJECT, 'dist', 'main.js');
export const STRACE = '/usr/bin/strace';
/** The mutating file syscalls a kill is injected at (those this architecture has). */
const MUTATING = [
  'rename',
  'renameat',
  'renameat2',
  'symlink',
  'symlinkat',
  'link',
  'linkat',
  'unlink',
  'unlinkat',
  'mkdir',
  'mkdirat',
  'rmdir',
];

export function mutatingSyscalls(): string[] {
  return MUTATING.filter(
    (s) => spawnSync(STRACE, ['-qq', '-o', '/dev/null', '-e', `trace=${s}`, 'true']).status === 0,
  );
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `command` to its end (or its kill); `onStart` gets the child's pid. */
export function run(
  command: string,
  args: string[],
  env: Record<string, string>,
  onStart?: (pid: number) => void,
): Promise<Run> {
  const child = spawn(command, args, { cwd: WORKSPACE, env: { PATH: process.env.PATH ?? '', ...env } });
  if (child.pid !== undefined) onStart?.(child.pid);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((done) => child.once('close', (code, signal) => done({ code, signal, stdout, stderr })));
}

export const cli = (args: string[], env: Record<string, string>, onStart?: (pid: number) => void) =>
  run(process.execPath, [MAIN, ...args], env, onStart);

/** `cert rotate` under strace: SIGKILL at the `n`-th call of `syscall` (counted per syscall; n 0: only count). */
export function straceRotate(
  syscall: string[],
  n: number,
  env: Record<string, string>,
  log?: string,
): Promise<Run> {
  const inject = n > 0 ? ['-e', `inject=${syscall.join(',')}:signal=SIGKILL:when=${n}`] : [];
  return run(
    STRACE,
    [
      '-f',
      '-qq',
      '-o',
      log ?? '/dev/null',
      '-e',
      `trace=${syscall.join(',')}`,
      ...inject,
      process.execPath,
      MAIN,
      'cert',
      'rotate',
      '--json',
    ],
    env,
  );
}

/** What the emulator hook is told to do with the CLI's requests. */
export interface Arm {
  /** 1-based index of the request to act on (Infinity: only record them). */
  index: number;
  phase: 'arrive' | 'answered';
  /** Kills the CLI and resolves once it has exited. */
  kill(): Promise<void>;
  seen: string[];
  killedAt?: string;
}

export interface Lane {
  name: string;
  emulator: RunningEmulator;
  admin: GraphClient;
  caFile: string;
  api: TestServer;
  apiAppId: string;
  apiSp: string;
  roleId: string;
  graphSp: string;
  arm: Arm | undefined;
  close(): Promise<void>;
}

const SCOPE = 'api://certflow-crash-test/.default';

export async function startLane(dir: string, name: string): Promise<Lane> {
  const lane = { name, arm: undefined } as Lane;
  lane.emulator = await startEmulator({
    stateDir: join(dir, `emulator-${name}`),
    onRequest: (req, res) => {
      const arm = lane.arm;
      if (!arm) return;
      const what = `${req.method} ${new URL(req.url ?? '/', 'https://x').pathname}`;
      arm.seen.push(what);
      if (arm.seen.length !== arm.index) return;
      arm.killedAt = `${what} (${arm.phase})`;
      if (arm.phase === 'arrive')
        return arm.kill().then(() => {
          req.socket.destroy();
          return false;
        });
      const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
      res.end = ((...args: unknown[]) => {
        void arm.kill().then(() => end(...args));
        return res;
      }) as ServerResponse['end'];
      return;
    },
  });
  lane.caFile = join(dir, `ca-${name}.pem`);
  const caPem = readFileSync(lane.emulator.caCertificatePath, 'utf8');
  writeFileSync(lane.caFile, caPem);
  lane.admin = await GraphClient.connect(lane.emulator);
  const provisioned = await provisionApiAndPartner(lane.admin, {
    apiDisplayName: `crash test API ${name}`,
    apiIdentifierUri: SCOPE.replace('/.default', ''),
    roles: ['Orders.Read'],
    partnerDisplayName: `crash test first partner ${name}`,
    grantRoles: [],
  });
  lane.apiAppId = provisioned.api.appId;
  lane.apiSp = provisioned.api.servicePrincipalId;
  lane.roleId = provisioned.api.roleIds['Orders.Read']!;
  lane.graphSp = (await lane.admin.findServicePrincipalByAppId(GRAPH_APP_ID))!.id;
  const jwks = createLocalJWKSet(JSON.parse(await fetchText(lane.emulator.jwksUri, caPem)) as JSONWebKeySet);
  lane.api = await startHttpServer(async (req, _body, res) => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    try {
      await jwtVerify(token, jwks, { issuer: lane.emulator.issuer, audience: lane.apiAppId });
    } catch {
      return json(res, 401, { error: 'invalid_token' });
    }
    json(res, 200, { orders: [] });
  });
  lane.close = async () => {
    await lane.api.close();
    lane.admin.close();
    await lane.emulator.close();
  };
  return lane;
}

export interface Partner {
  objectId: string;
  env: Record<string, string>;
  directory: string;
  token?: SoftHsmToken;
}

/**
 * A partner of its own on the lane (allowed Orders.Read on the API, and Application.Read.All so
 * a lost addKey answer's keyId can be learned), with a registered certificate whose keyId is in
 * partner.key-id: a key file, or a key made by `cert create --key-store` in a fresh SoftHSM2 token.
 */
export async function newPartner(
  lane: Lane,
  dir: string,
  name: string,
  keyIn: 'file' | 'pkcs11',
): Promise<Partner> {
  const app = await lane.admin.createApplication({ displayName: name });
  const sp = await lane.admin.createServicePrincipal(app.appId);
  await lane.admin.assignAppRole({ principalId: sp.id, resourceId: lane.apiSp, appRoleId: lane.roleId });
  await lane.admin.assignAppRole({
    principalId: sp.id,
    resourceId: lane.graphSp,
    appRoleId: GRAPH_ROLE_IDS['Application.Read.All'],
  });
  const directory = join(dir, name);
  const token = keyIn === 'pkcs11' ? createSoftHsmToken({ label: 'crash' }) : undefined;
  const env: Record<string, string> = {
    ENTRA_INSTANCE: lane.emulator.url,
    PARTNER_TENANT_ID: lane.emulator.tenantId,
    PARTNER_CLIENT_ID: app.appId,
    PARTNER_SCOPE: SCOPE,
    PARTNER_API_BASE_URL: lane.api.url,
    PARTNER_CERT_DIR: directory,
    PARTNER_CA_FILE: lane.caFile,
    PARTNER_APP_OBJECT_ID: app.id,
    PARTNER_GRAPH_URL: lane.emulator.graphUrl,
    ...token?.env,
  };
  const store = new CertificateStore(directory);
  if (token) {
    const made = await cli(['cert', 'create', '--key-store', `pkcs11:token=crash;object=${name}`], env);
    if (made.code !== 0) throw new Error(`cert create in the token failed: ${made.stderr}`);
  } else store.create({ commonName: name });
  const cer = readFileSync(join(directory, 'partner.cer'));
  const { keyId } = await lane.admin.addCertificate(app.id, cer, name);
  store.setKeyId(store.currentGeneration()!, keyId);
  return { objectId: app.id, env, directory, ...(token ? { token } : {}) };
}

/** The private and public keys in a SoftHSM2 token, counted by a process of its own (the module is per process). */
export function keysInToken(token: SoftHsmToken): { private: number; public: number } {
  const script = `
    const { PKCS11, CKF_SERIAL_SESSION, CKA_CLASS, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKU_USER } = require('pkcs11js');
    const p = new PKCS11(); p.load(process.env.PARTNER_PKCS11_MODULE); p.C_Initialize();
    const slot = p.C_GetSlotList(true)[0];
    const s = p.C_OpenSession(slot, CKF_SERIAL_SESSION); p.C_Login(s, CKU_USER, process.env.PARTNER_PKCS11_PIN);
    const count = (cls) => { p.C_FindObjectsInit(s, [{ type: CKA_CLASS, value: cls }]); const n = p.C_FindObjects(s, 100).length; p.C_FindObjectsFinal(s); return n; };
    process.stdout.write(JSON.stringify({ private: count(CKO_PRIVATE_KEY), public: count(CKO_PUBLIC_KEY) }));
    p.C_Logout(s); p.C_CloseSession(s); p.C_Finalize();`;
  return JSON.parse(
    execFileSync(process.execPath, ['-e', script], {
      cwd: WORKSPACE,
      env: { ...process.env, ...token.env },
    }).toString(),
  ) as {
    private: number;
    public: number;
  };
}

/** Everything a converged rotation must leave, as a list of what is wrong (empty: converged). */
export async function problemsAfterRotation(lane: Lane, partner: Partner): Promise<string[]> {
  const problems: string[] = [];
  const { directory } = partner;
  const current = parseCertificate(readFileSync(join(directory, 'partner.cer')));
  const app = await lane.admin.getApplication(partner.objectId, { select: ['keyCredentials'] });
  const registered = app.keyCredentials.map((k) => String(k.customKeyIdentifier));
  if (registered.length !== 1 || registered[0] !== current.thumbprints.sha1Hex)
    problems.push(`registered: ${registered.join(', ')}; current: ${current.thumbprints.sha1Hex}`);
  const keyIdPath = join(directory, 'partner.key-id');
  const keyId = existsSync(keyIdPath) ? readFileSync(keyIdPath, 'utf8').trim() : undefined;
  if (keyId !== app.keyCredentials[0]?.keyId)
    problems.push(`partner.key-id is ${keyId}, Graph's keyId ${app.keyCredentials[0]?.keyId}`);
  const left = [
    ...readdirSync(directory).filter((n) => n.startsWith('rotation.') || n.startsWith('.')),
    ...readdirSync(join(directory, 'generations')).flatMap((gen) =>
      gen.startsWith('.')
        ? [gen]
        : readdirSync(join(directory, 'generations', gen)).filter((n) => n.startsWith('.')),
    ),
  ];
  if (left.length) problems.push(`left behind: ${left.join(', ')}`);
  const generations = readdirSync(join(directory, 'generations'));
  if (generations.length !== 1) problems.push(`generations: ${generations.join(', ')}`);
  if (partner.token) {
    const keys = keysInToken(partner.token);
    if (keys.private !== 1 || keys.public !== 1) problems.push(`keys in the token: ${JSON.stringify(keys)}`);
  }
  return problems;
}
