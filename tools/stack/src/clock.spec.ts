/**
 * The stack's clock (issue 17): moved through the emulator's admin API, it moves for every process.
 * The real partner worker (`run`, MSAL, the partner's certificate made at start) refreshes ahead of
 * expiry and past it without waiting, warns when its certificate nears its end, and reports the
 * emulator's refusal once the certificate is past its `endDateTime`. Then `npm start` itself: the
 * offset is narrated, and a start without one drops the clock file the earlier run left.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CLOCK_FILE_ENV, readClockFile } from '@certflow/clock';
import { clockFilePath, LOCK_FILE, startEmulator } from '@certflow/entra-emulator';
import { runJsonCommand, stopChild } from './child-service';
import { partnerTokenResponse } from './partner-credentials';
import { startStack, type RunningStack } from './stack';
import { stackPartner } from './stack-file';
import { defaultTopologyJson, writeTopology } from './topology.test-helpers';
import { appEntryPoint } from './workspace';

const H = 3_600_000;
const VALIDITY_DAYS = 40; // more than the worker's 30-day warning threshold
const dir = mkdtempSync(join(tmpdir(), 'certflow-clock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An HTTPS exchange trusting the development CA; `json` parses the answer. */
function https(
  stack: RunningStack,
  method: string,
  url: string,
  headers: Record<string, string>,
  body?: string,
) {
  const ca = readFileSync(stack.file.caCertificatePath);
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(url, { method, ca, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject).end(body);
  });
}

/** PUT /admin/clock with a fresh admin token (one from before a move may have expired by the moved clock). */
async function moveClock(stack: RunningStack, offset: string): Promise<void> {
  const { admin, tokenEndpoint, url } = stack.emulator;
  const form = new URLSearchParams({
    grant_type: 'client_credentials',
    client_id: admin.clientId,
    client_secret: admin.clientSecret,
    scope: 'https://graph.microsoft.com/.default',
  }).toString();
  const token = await https(
    stack,
    'POST',
    tokenEndpoint,
    { 'content-type': 'application/x-www-form-urlencoded' },
    form,
  );
  expect(token.status, token.text).toBe(200);
  const bearer = (JSON.parse(token.text) as { access_token: string }).access_token;
  const res = await https(
    stack,
    'PUT',
    `${url}/admin/clock`,
    { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    JSON.stringify({ offset }),
  );
  expect(res.status, res.text).toBe(200);
  expect(readClockFile(clockFilePath(stack.file.stateDir))).toBe(
    (JSON.parse(res.text) as { offsetMs: number }).offsetMs,
  );
}

/** Sum of a Prometheus counter's samples whose labels contain `labels`. */
async function metric(url: string, name: string, labels = '', ca?: Buffer): Promise<number> {
  const text = ca
    ? await new Promise<string>((resolve, reject) => {
        request(url, { ca }, (res) => {
          let t = '';
          res.setEncoding('utf8').on('data', (d) => (t += d));
          res.on('end', () => resolve(t));
        })
          .on('error', reject)
          .end();
      })
    : await (await fetch(url)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .filter((l) => l.includes(labels))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

/** The partner worker's `run` command as a child process, its JSON lines and stderr collected. */
function runWorker(env: NodeJS.ProcessEnv): {
  child: ChildProcess;
  events: Record<string, unknown>[];
  stderr: string[];
} {
  const child = spawn(
    process.execPath,
    [
      appEntryPoint('partner-worker'),
      'run',
      '--path',
      '/orders',
      '--interval-ms',
      '250',
      '--metrics-port',
      '0',
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const events: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout! }).on(
    'line',
    (l) => l.startsWith('{') && events.push(JSON.parse(l)),
  );
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  return { child, events, stderr };
}

describe('the clock moved through the admin API', () => {
  it('moves it for the partner worker, the gateway and the API: refresh ahead and past expiry, certificate warning, then the refusal of the expired certificate', async () => {
    const topology = defaultTopologyJson();
    const contoso = topology.partners.find((p) => p.name === 'contoso')!;
    contoso.certificate = { ...(contoso.certificate as object), validityDays: VALIDITY_DAYS };
    const stateDir = join(dir, 'state');
    const stack = await startStack({
      stateDir,
      topologyFile: writeTopology(dir, 'topology.json', topology),
      tokenLifetimeSeconds: 3600,
      clockOffsetMs: 0,
    });
    const worker = runWorker(stack.partnerEnv('contoso'));
    try {
      const clockFile = clockFilePath(stateDir);
      expect(stack.file.clockFile).toBe(clockFile);
      expect(stack.partnerEnv('contoso')[CLOCK_FILE_ENV]).toBe(clockFile);
      const appId = stackPartner(stack.file, 'contoso').appId;
      const ca = readFileSync(stack.file.caCertificatePath);
      const issued = () =>
        metric(
          `${stack.emulator.url}/metrics`,
          'entra_emulator_tokens_issued_total',
          `client_id="${appId}"`,
          ca,
        );
      const responses = () => worker.events.filter((e) => e.event === 'response');
      const okAfter = async (n: number) =>
        expect
          .poll(() => responses().filter((e) => Number(e.n) > n && e.status === 200).length, {
            timeout: 10_000,
          })
          .toBeGreaterThan(0);

      await okAfter(0);
      // The worker follows the stack's clock file, and says so once at start.
      expect(worker.stderr.join('\n')).toContain(`follows ${CLOCK_FILE_ENV}=${clockFile}`);
      const metricsUrl = `${String(worker.events.find((e) => e.event === 'metrics')?.url)}/metrics`;
      const before = await issued();

      // 7 minutes before the token's expiry (inside the 10-minute refresh-ahead window, outside the
      // last 5 minutes): a background refresh, while the current token still serves the calls.
      await moveClock(stack, '+53m');
      const n1 = responses().length;
      await expect.poll(issued, { timeout: 10_000 }).toBe(before + 1);
      await expect
        .poll(() => metric(metricsUrl, 'partner_token_refreshes_total'), { timeout: 5_000 })
        .toBe(1);
      await okAfter(n1);

      // Past the refreshed token's expiry: the next call gets a new token at once.
      await moveClock(stack, '+2h');
      const n2 = responses().length;
      await expect.poll(issued, { timeout: 10_000 }).toBe(before + 2);
      await okAfter(n2);
      // `npm run partner` follows the same clock (stack.json names the file): on the real time, its
      // assertion would be two hours old by the emulator's clock (AADSTS700024).
      const partnerCli = await runJsonCommand(
        join(__dirname, '..', 'dist', 'partner.js'),
        ['--state-dir', stateDir, '--as', 'contoso', 'call', '/orders', '--json'],
        process.env,
      );
      expect(partnerCli.code, partnerCli.output).toBe(0);

      // 25 days left of 40: the worker warns (event, stderr, metric).
      await moveClock(stack, '+15d');
      await expect
        .poll(() => worker.events.find((e) => e.event === 'warning' && e.reason === 'certificate-expiring'), {
          timeout: 10_000,
        })
        .toMatchObject({ daysUntilExpiry: expect.any(Number) });
      expect(worker.stderr.join('\n')).toMatch(/warning: the certificate expires in 2[45] days/);
      expect(await metric(metricsUrl, 'partner_certificate_expiring')).toBe(1);
      await okAfter(responses().length);

      // Past the certificate's endDateTime: the emulator refuses it, and the worker says why.
      await moveClock(stack, `+${VALIDITY_DAYS + 1}d`);
      const refused = await partnerTokenResponse(stack.file, stackPartner(stack.file, 'contoso'));
      expect(refused.status).toBe(401);
      expect(JSON.parse(refused.text)).toMatchObject({ error: 'invalid_client', error_codes: [700027] });
      expect(refused.text).toContain('The key used is expired');
      await expect
        .poll(() => worker.events.find((e) => e.event === 'call-failed')?.reason, { timeout: 10_000 })
        .toMatch(/AADSTS700027: .*The key used is expired/);
    } finally {
      await stopChild(worker.child);
      await stack.close();
    }
  }, 120_000);
});

describe('npm start --clock-offset', () => {
  const main = join(__dirname, '..', 'dist', 'main.js');
  const npmStart = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
    spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 90_000, env });

  it('refuses an offset it cannot read, naming the option, before anything is started', () => {
    const stateDir = join(dir, 'refused');
    const flag = npmStart(['--once', '--state-dir', stateDir, '--clock-offset', 'soon']);
    expect(flag.status).toBe(2);
    expect(flag.stderr).toContain('--clock-offset "soon" is not a clock offset');
    const fromEnv = npmStart(['--once', '--state-dir', stateDir], {
      ...process.env,
      CERTFLOW_CLOCK_OFFSET: '9999d',
    });
    expect(fromEnv.status).toBe(2);
    expect(fromEnv.stderr).toContain('CERTFLOW_CLOCK_OFFSET "9999d" is more than 3650 days');
    expect(existsSync(stateDir)).toBe(false);
  });

  it('takes a value starting with "-" after a space, as the emulator CLI does', () => {
    const stateDir = join(dir, 'spaced');
    const spaced = npmStart(['--once', '--state-dir', stateDir, '--clock-offset', '-9999d']);
    expect(spaced.stderr).toContain('--clock-offset "-9999d" is more than 3650 days');
    expect(spaced.status).toBe(2);
    expect(existsSync(stateDir)).toBe(false);
  });

  it('narrates the shifted clock; the next start without an offset removes the file and says so', () => {
    const stateDir = join(dir, 'narrated');
    const shifted = npmStart(['--once', '--state-dir', stateDir, '--clock-offset', '+2h']);
    expect(shifted.status, shifted.stdout + shifted.stderr).toBe(0);
    expect(shifted.stdout).toMatch(/clock shifted by \+2h.*every process of the stack follows .*clock\.json/);
    expect(shifted.stdout).toContain('The flow works.');
    expect(readClockFile(clockFilePath(stateDir))).toBe(2 * H);

    const plain = npmStart(['--once', '--state-dir', stateDir]);
    expect(plain.status, plain.stdout + plain.stderr).toBe(0);
    expect(plain.stdout).not.toContain('clock shifted');
    expect(plain.stdout).toMatch(
      /clock: removed .*clock\.json left by an earlier run \(offset \+2h\); this run uses the real time/,
    );
    expect(existsSync(clockFilePath(stateDir))).toBe(false);
  }, 180_000);

  it("behind the real time on a new state directory: the partners' certificates are valid on both clocks", () => {
    const stateDir = join(dir, 'behind');
    const behind = npmStart(['--once', '--state-dir', stateDir, '--clock-offset=-2h']);
    expect(behind.status, behind.stdout + behind.stderr).toBe(0);
    expect(behind.stdout).toContain('The flow works.');
    // The same certificates, now judged by the real time.
    const real = npmStart(['--once', '--state-dir', stateDir]);
    expect(real.status, real.stdout + real.stderr).toBe(0);
    expect(real.stdout).toContain('The flow works.');
  }, 180_000);
});

describe('startStack with a clock.json that is not a file', () => {
  it('rejects naming it, and leaves nothing running: the emulator closed, its lock freed', async () => {
    const stateDir = join(dir, 'clock-dir');
    mkdirSync(clockFilePath(stateDir), { recursive: true });
    const topologyFile = writeTopology(dir, 'clock-dir-topology.json', defaultTopologyJson());
    await expect(startStack({ stateDir, topologyFile })).rejects.toThrow(
      `${clockFilePath(stateDir)} is not a file`,
    );
    expect(existsSync(join(stateDir, LOCK_FILE))).toBe(false);
    expect(existsSync(clockFilePath(stateDir))).toBe(true); // left alone
    // The directory is free: another emulator takes it at once.
    const emulator = await startEmulator({ stateDir });
    await emulator.close();
  }, 60_000);
});
