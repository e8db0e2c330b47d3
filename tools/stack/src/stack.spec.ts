import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { isGuid } from '@certflow/claims';
import { RunningStack, StepReport, startStack } from './stack';
import { readStackFile, servedApi, stackFilePath, stackPartner } from './stack-file';
import { requestPartnerToken } from './partner-credentials';
import { API_LOG, GATEWAY_ACCESS_LOG } from './call-narration';
import { runJsonCommand } from './child-service';
import { appEntryPoint } from './workspace';
import { httpStatus, httpsStatus, jsonLines, lineWithTrace, type TracedLine } from './stack.test-helpers';

const stateDir = mkdtempSync(join(tmpdir(), 'certflow-stack-'));
const steps: StepReport[] = [];
let stack: RunningStack;
const get = (url: string, token?: string): Promise<number> =>
  httpsStatus(url, readFileSync(stack.file.caCertificatePath), { token });
const getHttp = httpStatus;

/** A v2 access token as the emulator issues it to the partner, signed with the emulator's real key. */
function partnerClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    aud: servedApi(stack.file).appId,
    iss: stack.file.emulator.issuer,
    iat: now,
    nbf: now,
    exp: now + 3600,
    azp: stackPartner(stack.file).appId,
    azpacr: '2',
    idtyp: 'app',
    oid: stackPartner(stack.file).servicePrincipalId,
    sub: stackPartner(stack.file).servicePrincipalId,
    tid: stack.file.tenantId,
    roles: ['Orders.Read'],
    uti: randomUUID(),
    ver: '2.0',
    ...overrides,
  };
}

const TRACE_ID = /^[0-9a-f]{32}$/;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

beforeAll(async () => {
  stack = await startStack({ stateDir, onStep: (s) => steps.push(s) });
}, 90_000);

const stepOf = (partner: string | undefined, n: number | undefined, nth = 0): StepReport | undefined =>
  steps.filter((s) => s.partner === partner && s.step === n)[nth];

/** The trace id step 7 printed (the stack's own first call, partner contoso). */
function narratedTraceId(): string {
  const id =
    stepOf('contoso', 7)
      ?.details.find(([k]) => k === 'traceId')?.[1]
      .split(' ')[0] ?? '';
  expect(id).toMatch(TRACE_ID);
  return id;
}

afterAll(async () => {
  await stack?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

describe('npm start: the whole flow', () => {
  it('narrates step 1 once, steps 2–4 for each partner, then steps 5–8 for each partner', () => {
    expect(steps.map((s) => [s.partner ?? '', s.step ?? '-'].join(' ').trim())).toEqual([
      '1',
      ...['contoso', 'fabrikam'].flatMap((p) => [`${p} 2`, `${p} 3`, `${p} 4`]),
      // contoso: GET narrated and repeated from the cache; then its access summary. Same for fabrikam.
      ...['contoso', 'fabrikam'].flatMap((p) => [5, 6, 7, 8, '-', '-', '-'].map((n) => `${p} ${n}`)),
    ]);
    // A fresh state directory: every registration is created, each partner's certificate uploaded.
    const plan = steps[0]!.lines!.join('\n');
    for (const created of ['api orders', 'partner contoso', 'partner fabrikam'])
      expect(plan).toMatch(new RegExp(`^ *\\+ create ${created}: `, 'm'));
    expect(plan).toMatch(/^ *\+ grant partner fabrikam: Orders\.Write on api orders$/m);
    expect(plan).toMatch(/^ *\+ upload partner contoso: certificate /m);
    expect(steps[0]!.details.map(([k]) => k)).toEqual(['api orders', 'partner contoso', 'partner fabrikam']);
    expect(stepOf('contoso', 7)!.details.find(([k]) => k === 'traceId')?.[1]).toBe(
      `${narratedTraceId()}  (grep it in ${join(stateDir, GATEWAY_ACCESS_LOG)} and ${join(stateDir, API_LOG)})`,
    );
    for (const partner of ['contoso', 'fabrikam']) {
      expect(stepOf(partner, 8)!.details).toContainEqual(['status', '200']);
      expect(stepOf(partner, 8)!.details.find(([k]) => k === 'API saw')?.[1]).toContain(
        '"clientAuthentication":"certificate"',
      );
      expect(stepOf(partner, undefined, 0)!.details).toContainEqual(['source', 'cache']);
      expect(stepOf(partner, undefined, 1)!.details).toContainEqual(['status', '200']);
      expect(stepOf(partner, 5)!.details.find(([k]) => k === 'header')?.[1]).toContain('x5t#S256');
      expect(stepOf(partner, 4)!.details.find(([k]) => k === 'keyCredential')?.[1]).toMatch(/\(added\)$/);
    }
    // Exactly the access the topology grants.
    expect(stepOf('contoso', undefined, 2)!.details).toEqual([
      ['GET /orders', '200 as expected (requires Orders.Read; contoso holds Orders.Read)'],
      ['POST /orders', '403 as expected (requires Orders.Write; contoso holds Orders.Read)'],
    ]);
    expect(stepOf('fabrikam', undefined, 2)!.details).toEqual([
      ['GET /orders', '200 as expected (requires Orders.Read; fabrikam holds Orders.Read, Orders.Write)'],
      ['POST /orders', '201 as expected (requires Orders.Write; fabrikam holds Orders.Read, Orders.Write)'],
    ]);
    expect(JSON.stringify(steps)).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/); // no token or assertion printed whole
    expect(stack.firstCallMs).toBeGreaterThan(0);
  });

  it('describes itself in stack.json, readable by its owner only', () => {
    const path = stackFilePath(stateDir);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const file = readStackFile(stateDir);
    expect(file).toEqual(stack.file);
    expect(file.version).toBe(2);
    expect(file.gateway.url).toMatch(/^https:\/\/localhost:\d+$/);
    expect(existsSync(file.caCertificatePath)).toBe(true);
    expect(file.apis).toEqual([
      {
        name: 'orders',
        displayName: 'certflow orders API',
        appId: expect.stringMatching(GUID),
        objectId: expect.stringMatching(GUID),
        servicePrincipalId: expect.stringMatching(GUID),
        identifierUri: 'api://certflow-orders',
        scope: 'api://certflow-orders/.default',
        roles: ['Orders.Read', 'Orders.Write'],
        url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
      },
    ]);
    expect(file.partners.map(({ name, displayName, roles }) => ({ name, displayName, roles }))).toEqual([
      { name: 'contoso', displayName: 'contoso-partner', roles: { orders: ['Orders.Read'] } },
      {
        name: 'fabrikam',
        displayName: 'fabrikam-partner',
        roles: { orders: ['Orders.Read', 'Orders.Write'] },
      },
    ]);
    for (const partner of file.partners) {
      expect(partner.certificateDirectory).toBe(join(stateDir, 'partners', partner.name));
      expect(statSync(join(partner.certificateDirectory, 'partner.key.pem')).mode & 0o777).toBe(0o600);
      const keyId = readFileSync(join(partner.certificateDirectory, 'partner.key-id'), 'utf8').trim();
      expect(isGuid(keyId), keyId).toBe(true);
    }
    expect(new Set(file.partners.map((p) => p.thumbprintSha256)).size).toBe(2);
    // Readers refuse another version with a message that says which.
    const other = mkdtempSync(join(tmpdir(), 'certflow-v1-'));
    try {
      writeFileSync(stackFilePath(other), JSON.stringify({ ...file, version: 1 }));
      expect(() => readStackFile(other)).toThrow(
        /is not a certflow stack file of version 2 \(its version: 1\)/,
      );
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it("follows one call by its traceId: the partner's event, the gateway's access log, the API's log", async () => {
    const run = await runJsonCommand(
      appEntryPoint('partner-worker'),
      ['call', '/orders', '--json'],
      stack.partnerEnv(),
    );
    expect(run.code, run.output).toBe(0);
    const called = run.events.find((e) => e.event === 'response') as unknown as TracedLine;
    expect(called.status).toBe(200);
    expect(called.traceId).toMatch(TRACE_ID);
    const { traceId } = called;

    const gatewayLog = join(stateDir, GATEWAY_ACCESS_LOG);
    const apiLog = join(stateDir, API_LOG);
    const atGateway = await lineWithTrace(gatewayLog, traceId);
    const atApi = await lineWithTrace(apiLog, traceId);
    expect(atGateway).toMatchObject({ event: 'request', path: '/orders', status: 200, policy: 'forwarded' });
    expect(atApi).toMatchObject({ event: 'request', route: '/orders', status: 200, requestId: traceId });
    // Each hop logs a span of its own in the one trace.
    expect(new Set([called.spanId, atGateway.spanId, atApi.spanId]).size).toBe(3);
    // The call the narration showed is in both logs too.
    await lineWithTrace(gatewayLog, narratedTraceId());
    await lineWithTrace(apiLog, narratedTraceId());

    expect(statSync(apiLog).mode & 0o777).toBe(0o600);
    expect(readFileSync(apiLog, 'utf8')).not.toMatch(/eyJ[\w-]+\.eyJ/); // never a token
  });

  it("serves each partner's token through the gateway and directly", async () => {
    for (const partner of stack.file.partners) {
      const token = await requestPartnerToken(stack.file, partner);
      expect(await get(`${stack.file.gateway.url}/orders`, token)).toBe(200);
      expect(await getHttp(`${servedApi(stack.file).url}/orders`, token)).toBe(200);
    }
  });
});

describe('negative paths, at the gateway and at the API directly', () => {
  const cases: [string, () => Promise<string | undefined>, number, number][] = [
    ['no token', async () => undefined, 401, 401],
    [
      'an expired token',
      () =>
        stack.emulator.signAccessToken(
          partnerClaims({
            exp: Math.floor(Date.now() / 1000) - 60,
            nbf: Math.floor(Date.now() / 1000) - 3700,
            iat: Math.floor(Date.now() / 1000) - 3700,
          }),
        ),
      401,
      401,
    ],
    [
      'a token for another audience',
      () => stack.emulator.signAccessToken(partnerClaims({ aud: randomUUID() })),
      401,
      401,
    ],
    [
      'a token without the Orders.Read role',
      () => stack.emulator.signAccessToken(partnerClaims({ roles: [] })),
      403,
      403,
    ],
  ];
  for (const [name, token, atGateway, atApi] of cases) {
    it(`${name}: ${atGateway} at the gateway, ${atApi} at the API`, async () => {
      const t = await token();
      expect(await get(`${stack.file.gateway.url}/orders`, t)).toBe(atGateway);
      expect(await getHttp(`${servedApi(stack.file).url}/orders`, t)).toBe(atApi);
    });
  }
});

describe('npm start -- --once', () => {
  const main = join(__dirname, '..', 'dist', 'main.js');

  it('reuses the registrations and the certificate of an earlier run, and exits 0', () => {
    const again = mkdtempSync(join(tmpdir(), 'certflow-once-'));
    try {
      const first = spawnSync(process.execPath, [main, '--once', '--state-dir', again], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(first.status, first.stdout + first.stderr).toBe(0);
      expect(first.stdout).toContain('The flow works.');
      // The trace id of the first call, in both logs as soon as the stack has stopped (stop flushes).
      const traceId = /traceId +([0-9a-f]{32}) +\(grep it in /.exec(first.stdout)?.[1];
      expect(traceId, first.stdout).toMatch(TRACE_ID);
      expect(readFileSync(join(again, GATEWAY_ACCESS_LOG), 'utf8')).toContain(`"traceId":"${traceId}"`);
      expect(readFileSync(join(again, API_LOG), 'utf8')).toContain(`"traceId":"${traceId}"`);
      const second = spawnSync(process.execPath, [main, '--once', '--state-dir', again], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(second.status, second.stdout + second.stderr).toBe(0);
      // The second start changes nothing in the directory, and says so.
      expect(second.stdout).toContain('No changes: the directory matches');
      for (const partner of ['contoso', 'fabrikam']) {
        // The registered certificate's keyId, for the partner's first cert rotate (removeKey).
        const keyId = readFileSync(join(again, 'partners', partner, 'partner.key-id'), 'utf8').trim();
        expect(isGuid(keyId), keyId).toBe(true);
        expect(keyId).toBe(keyId.toLowerCase()); // as Graph writes keyIds
        expect(first.stdout).toContain(`keyCredential ${keyId} (added)`);
        expect(second.stdout).toContain(`keyCredential ${keyId} (already registered)`);
      }
      expect(second.stdout.match(/earlier \(reused from the state directory\)/g)).toHaveLength(2);
      expect(second.stdout).toMatch(
        /contoso: Exactly the access the topology grants[\s\S]*POST \/orders +403 as expected/,
      );
      expect(second.stdout).toMatch(
        /fabrikam: Exactly the access the topology grants[\s\S]*POST \/orders +201 as expected/,
      );
      expect(existsSync(join(again, 'stack.json'))).toBe(false); // removed when the stack stops
    } finally {
      rmSync(again, { recursive: true, force: true });
    }
  }, 120_000);

  it('names the failing step and exits 1 when the emulator state is damaged', () => {
    const damaged = mkdtempSync(join(tmpdir(), 'certflow-damaged-'));
    try {
      writeFileSync(join(damaged, 'emulator-state.json'), '{"half": ');
      const run = spawnSync(process.execPath, [main, '--once', '--state-dir', damaged], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(run.status).toBe(1);
      expect(run.stderr).toContain('FAILED at starting the Entra ID emulator');
      expect(run.stderr).toContain('emulator-state.json');
      expect(readFileSync(join(damaged, 'emulator-state.json'), 'utf8')).toBe('{"half": ');
    } finally {
      rmSync(damaged, { recursive: true, force: true });
    }
  }, 60_000);

  it('refuses unknown flags with a usage message', () => {
    const run = spawnSync(process.execPath, [main, '--onec'], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/--onec/);
    expect(run.stderr).toContain('usage:');
  });
});

describe('npm run partner', () => {
  const partner = join(__dirname, '..', 'dist', 'partner.js');
  /** Async: the stack answers from this process, so the event loop must stay free. */
  function runPartner(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [partner, ...args], { env: { PATH: process.env.PATH } });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  it("runs the partner worker with the running stack's settings; help needs no stack; without one it says so", async () => {
    const called = await runPartner(['--state-dir', stateDir, 'call', '/orders', '--json']);
    expect(called.code, called.stderr).toBe(0);
    const response = jsonLines(called.stdout).find((e) => e.event === 'response');
    expect(response?.status).toBe(200);
    // Without --as: the topology's first partner.
    expect((response?.body as { caller: { clientAppId: string } }).caller.clientAppId).toBe(
      stackPartner(stack.file, 'contoso').appId,
    );

    const empty = mkdtempSync(join(tmpdir(), 'certflow-no-stack-'));
    try {
      const help = await runPartner(['--state-dir', empty, '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/^Usage: partner-worker <command>/);
      const none = await runPartner(['--state-dir', empty, 'call', '/orders']);
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(/stack\.json not found: is the stack running\? Start it with npm start/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  }, 60_000);

  it('--as NAME acts as that partner; an unknown name is refused with the names there are', async () => {
    const order = JSON.stringify({ customerReference: 'PO-as', total: { amount: '3.00', currency: 'EUR' } });
    const fabrikam = await runPartner([
      '--as',
      'fabrikam',
      '--state-dir',
      stateDir,
      'call',
      'POST',
      '/orders',
      '--data',
      order,
    ]);
    expect(fabrikam.code, fabrikam.stderr).toBe(0);
    expect(fabrikam.stdout).toMatch(/^HTTP 201$/m);
    const contoso = await runPartner([
      '--state-dir',
      stateDir,
      '--as',
      'contoso',
      'call',
      'POST',
      '/orders',
      '--data',
      order,
    ]);
    expect(contoso.code).toBe(1);
    expect(contoso.stdout).toMatch(/^HTTP 403$/m);
    const unknown = await runPartner(['--state-dir', stateDir, '--as', 'northwind', 'call', '/orders']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no partner "northwind" in the stack; its partners: contoso, fabrikam');
    const missing = await runPartner(['--as']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--as needs a partner name');
  }, 60_000);
});
