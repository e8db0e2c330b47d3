/**
 * certflow's k6 harness, run as the runner runs it (the built main.js in a child process)
 * against a real HTTPS server whose certificate comes from a CA made for the test.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DevelopmentCa } from '@certflow/certs';
import { json, startHttpsServer, tempDir, type TestServer } from '@certflow/testing';

const MAIN = join(__dirname, '..', '..', 'dist', 'k6-harness', 'main.js');

let dir: ReturnType<typeof tempDir>;
let server: TestServer;
let caFile: string;
const seen: string[] = [];

beforeAll(async () => {
  dir = tempDir('k6-harness-');
  const ca = DevelopmentCa.loadOrCreate(join(dir.path, 'ca'));
  caFile = join(dir.path, 'ca.pem');
  writeFileSync(caFile, ca.certificatePem);
  server = await startHttpsServer(ca, (req, body, res) => {
    seen.push(`${req.method} ${req.url}`);
    json(res, 200, { path: req.url, body, auth: req.headers.authorization ?? null });
  });
});

afterAll(async () => {
  await server.close();
  dir.remove();
});

interface Run {
  code: number | null;
  output: string;
  summary?: {
    metrics: Record<string, { values: Record<string, number>; thresholds?: Record<string, { ok: boolean }> }>;
  };
}

/** Writes `source` as a script and runs it; `interruptAfterMs` sends SIGINT once the run is under way. */
function run(
  name: string,
  source: string,
  env: Record<string, string> = {},
  interruptAfterMs?: number,
  signal: NodeJS.Signals = 'SIGINT',
): Promise<Run> {
  const script = join(dir.path, `${name}.js`);
  const summaryFile = join(dir.path, `${name}.summary.json`);
  writeFileSync(script, source);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, 'run', '--quiet', script], {
      env: { ...process.env, SSL_CERT_FILE: caFile, URL: server.url, SUMMARY: summaryFile, ...env },
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    if (interruptAfterMs) setTimeout(() => child.kill(signal), interruptAfterMs);
    child.on('exit', (code) =>
      resolve({
        code,
        output,
        ...(existsSync(summaryFile)
          ? { summary: JSON.parse(readFileSync(summaryFile, 'utf8')) as Run['summary'] }
          : {}),
      }),
    );
  });
}

const summaryExport = `export function handleSummary(data) { return { [__ENV.SUMMARY]: JSON.stringify(data) }; }`;

const GET_SCRIPT = (
  checkStatus: number,
  thresholds = `checks: ['rate==1'], http_req_failed: ['rate==0']`,
) => `
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';
const calls = new Counter('calls');
export const options = { vus: 2, duration: '600ms', thresholds: { ${thresholds}, calls: ['count>=2'] } };
export default function () {
  const res = http.get(__ENV.URL + '/orders?vu=' + __VU, { headers: { Authorization: 'Bearer t' } });
  check(res, { 'status': (r) => r.status === ${checkStatus}, 'echo': (r) => r.json('auth') === 'Bearer t' });
  calls.add(1);
  sleep(0.01);
}
${summaryExport}`;

describe("certflow's k6 harness", () => {
  it('runs VUs over verified TLS, evaluates thresholds and hands k6 summary data to handleSummary', async () => {
    const r = await run('pass', GET_SCRIPT(200));
    expect(r.output).toContain("certflow's k6 HARNESS, NOT k6");
    expect(r.code).toBe(0);
    const m = r.summary!.metrics;
    expect(m.http_reqs!.values.count).toBeGreaterThanOrEqual(2);
    expect(m.calls!.values.count).toBe(m.http_reqs!.values.count);
    expect(m.checks!.values.rate).toBe(1);
    expect(m.checks!.thresholds!['rate==1']!.ok).toBe(true);
    expect(m.vus!.values.value).toBe(2);
  });

  it('exits 99 when a broken check fails the checks threshold, as k6 does', async () => {
    const r = await run('broken-check', GET_SCRIPT(201));
    expect(r.code).toBe(99);
    expect(r.summary!.metrics.checks!.thresholds!['rate==1']!.ok).toBe(false);
    expect(r.output).toMatch(/✗ checks 'rate==1'/);
  });

  it('exits 99 for a wrong URL (transport errors count in http_req_failed)', async () => {
    const r = await run('wrong-url', GET_SCRIPT(200), { URL: 'https://127.0.0.1:1' });
    expect(r.code).toBe(99);
    expect(r.summary!.metrics.http_req_failed!.values.rate).toBe(1);
  });

  it('verifies TLS: without the CA in SSL_CERT_FILE every request fails', async () => {
    const r = await run('no-ca', GET_SCRIPT(200), { SSL_CERT_FILE: '' });
    expect(r.code).toBe(99);
    expect(r.output).toMatch(/self[- ]signed|unable to verify|certificate/i);
  });

  it('passes setup() data to the VUs and teardown(); exec.test.fail() exits 110', async () => {
    const source = (expected: string) => `
import http from 'k6/http';
import exec from 'k6/execution';
export const options = { iterations: 3, vus: 1 };
export function setup() { return { token: 'from-setup' }; }
export default function (data) { http.post(__ENV.URL + '/vu', data.token); }
export function teardown(data) {
  http.post(__ENV.URL + '/teardown', data.token);
  if (data.token !== '${expected}') exec.test.fail('setup data was ' + data.token);
}
${summaryExport}`;
    seen.length = 0;
    expect((await run('data-ok', source('from-setup'))).code).toBe(0);
    expect(seen.filter((s) => s === 'POST /vu')).toHaveLength(3);
    expect(seen).toContain('POST /teardown');
    const failed = await run('data-bad', source('something else'));
    expect(failed.code).toBe(110);
    expect(failed.output).toContain('test.fail: setup data was from-setup');
  });

  it('stops on SIGINT like k6: VUs stop, teardown() and handleSummary() run, exit 105', async () => {
    seen.length = 0;
    const started = Date.now();
    const r = await run(
      'sigint',
      `import http from 'k6/http';
export const options = { vus: 2, duration: '60s' };
export default function () { http.get(__ENV.URL + '/load'); }
export function teardown() { http.get(__ENV.URL + '/teardown'); }
${summaryExport}`,
      {},
      1500,
    );
    expect(r.code).toBe(105);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(seen).toContain('GET /teardown');
    expect(r.summary!.metrics.http_reqs!.values.count).toBeGreaterThan(0);
  });

  it('fails a run whose setup() data JSON cannot hold, as k6 (exit 107), even with handleSummary', async () => {
    for (const [name, data] of [
      ['bigint', '{ b: BigInt(1) }'],
      ['function', '{ d: 1, f: () => 1 }'],
    ] as const) {
      const r = await run(
        `setup-${name}`,
        `export function setup() { return ${data}; }\nexport default function (d) { console.log(JSON.stringify(d)); }\n${summaryExport}`,
      );
      expect(r.code, r.output).toBe(107);
      expect(r.output).toContain('error marshaling setup() data to JSON');
    }
  });

  it('stops on SIGTERM as on SIGINT (k6 traps both): teardown() and handleSummary() run, exit 105', async () => {
    seen.length = 0;
    const r = await run(
      'sigterm',
      `import http from 'k6/http';
export const options = { vus: 1, duration: '60s' };
export default function () { http.get(__ENV.URL + '/load'); }
export function teardown() { http.get(__ENV.URL + '/teardown'); }
${summaryExport}`,
      {},
      1500,
      'SIGTERM',
    );
    expect(r.code, r.output).toBe(105);
    expect(seen).toContain('GET /teardown');
    expect(r.summary!.metrics.http_reqs!.values.count).toBeGreaterThan(0);
  });

  it('exits like k6 when several things fail: a signal (105) before test.fail() (110) before thresholds (99)', async () => {
    const source = `import exec from 'k6/execution';
import { sleep } from 'k6';
export const options = { vus: 1, duration: __ENV.D, thresholds: { iterations: ['count>1000000000'] } };
export default function () { sleep(0.05); }
export function teardown() { if (__ENV.FAIL) exec.test.fail('marked'); }
${summaryExport}`;
    expect((await run('prec-thresholds', source, { D: '300ms' })).code).toBe(99);
    expect((await run('prec-fail', source, { D: '300ms', FAIL: '1' })).code).toBe(110);
    expect((await run('prec-signal', source, { D: '60s', FAIL: '1' }, 1500)).code).toBe(105);
  });

  it('refuses a threshold aggregation k6 does not support for the metric type (exit 104)', async () => {
    const r = await run(
      'bad-aggregate',
      `export const options = { thresholds: { checks: ['fails==0'] } };\nexport default function () {}`,
    );
    expect(r.code).toBe(104);
    expect(r.output).toContain("k6 does not support 'fails' on a rate metric (it supports rate)");
  });

  it('runs one iteration without duration or iterations, as k6, and names itself in the summary', async () => {
    const r = await run('once', `export default function () {}\n${summaryExport}`);
    expect(r.code).toBe(0);
    expect(r.summary!.metrics.iterations!.values.count).toBe(1);
    expect((r.summary as unknown as { certflowHarness: string }).certflowHarness).toMatch(/not k6/);
  });

  it('keeps up with a tight loop and stops promptly on SIGINT', async () => {
    const started = Date.now();
    const r = await run(
      'tight',
      `import { check } from 'k6';
export const options = { vus: 4, duration: '60s' };
export default function () { check(1, { one: (v) => v === 1 }); }
${summaryExport}`,
      {},
      1500,
    );
    expect(r.code, r.output).toBe(105);
    expect(Date.now() - started).toBeLessThan(6000);
    const iterations = r.summary!.metrics.iterations!.values.count!;
    expect(iterations).toBeGreaterThan(10_000);
    expect(r.summary!.metrics.checks!.values.passes).toBe(iterations);
  });

  it('bounds a whole request by params.timeout, as k6 (not only the time between bytes)', async () => {
    const trickle = await startHttpsServer(
      DevelopmentCa.loadOrCreate(join(dir.path, 'ca')),
      (_req, _body, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        const tick = setInterval(() => res.write('.'), 100);
        setTimeout(() => {
          clearInterval(tick);
          res.end();
        }, 3000);
      },
    );
    try {
      const r = await run(
        'timeout',
        `import http from 'k6/http';
import { check } from 'k6';
export default function () {
  const res = http.get(__ENV.URL, { timeout: '600ms' });
  check(res, { 'timed out': (r) => r.status === 0 && r.error_code === 1050 && r.timings.duration < 2000 });
}
export const options = { thresholds: { checks: ['rate==1'] } };
${summaryExport}`,
        { URL: trickle.url },
      );
      expect(r.code, r.output).toBe(0);
      expect(r.output).toContain('request timeout after 600 ms');
    } finally {
      await trickle.close();
    }
  });

  it('refuses requests, metric adds and checks in the init context as k6 does (exit 107)', async () => {
    seen.length = 0;
    const cases = [
      ['init-http', `import http from 'k6/http';\nhttp.get(__ENV.URL + '/init');`, 'Making http requests'],
      ['init-add', `import { Counter } from 'k6/metrics';\nnew Counter('c').add(1);`, 'Adding to metrics'],
      ['init-check', `import { check } from 'k6';\ncheck(1, { one: () => true });`, 'Using check()'],
    ] as const;
    for (const [name, init, message] of cases) {
      const r = await run(
        name,
        `${init}\nexport const options = { vus: 2, iterations: 2 };\nexport default function () {}\n${summaryExport}`,
      );
      expect(r.code, r.output).toBe(107);
      expect(r.output).toContain(`${message} in the init context is not supported`);
    }
    expect(seen).not.toContain('GET /init');
  });

  it('refuses a percentile outside 0..100 in a threshold or summaryTrendStats, as k6 (exit 104)', async () => {
    for (const [name, options] of [
      ['p150', `{ thresholds: { http_req_duration: ['p(150)<1000'] } }`],
      ['stats101', `{ summaryTrendStats: ['avg', 'p(101)'] }`],
    ] as const) {
      const r = await run(name, `export const options = ${options};\nexport default function () {}`);
      expect(r.code, r.output).toBe(104);
      expect(r.output).toContain('malformed percentile value');
    }
  });

  it('starts the run clock after every VU is initialised, as k6 (init time is not in the rates)', async () => {
    const r = await run(
      'slow-init',
      `const t = Date.now(); while (Date.now() - t < 1500) {}
export const options = { vus: 2, duration: '500ms' };
export default function () {}
${summaryExport}`,
    );
    expect(r.code, r.output).toBe(0);
    const state = (r.summary as unknown as { state: { testRunDurationMs: number } }).state;
    expect(state.testRunDurationMs).toBeGreaterThanOrEqual(500);
    expect(state.testRunDurationMs).toBeLessThan(1400);
  });

  it('logs a handleSummary() error and keeps the exit code, as k6', async () => {
    const r = await run(
      'summary-throws',
      `export default function () {}\nexport function handleSummary() { throw new Error('boom'); }`,
    );
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/failed to handle the end-of-test summary: .*boom/);
  });

  it('refuses what it does not implement, naming it and pointing at the README', async () => {
    const ws = await run('ws', `import ws from 'k6/ws';\nexport default function () { ws.connect(''); }`);
    expect(ws.code).toBe(107);
    expect(ws.output).toContain("the k6 module 'k6/ws'");
    expect(ws.output).toContain('load/k6/README.md');

    const named = await run(
      'named',
      `import { batch } from 'k6/http';\nexport default function () { batch([]); }`,
    );
    expect(named.code).toBe(107);
    expect(named.output).toMatch(/does not provide an export named 'batch'.*load\/k6\/README\.md/);

    const call = await run('call', GET_SCRIPT(200).replace('http.get(', 'http.batch('));
    expect(call.code).toBe(99); // no request, no check: the thresholds fail
    expect(call.output).toContain("k6/http: 'batch' is not implemented by certflow k6 harness (NOT k6)");

    const option = await run(
      'option',
      `export const options = { stages: [] };\nexport default function () {}`,
    );
    expect(option.code).toBe(104);
    expect(option.output).toContain("option 'stages' is not implemented");

    const node = await run(
      'node',
      `import { readFileSync } from 'node:fs';\nexport default function () { readFileSync('x'); }`,
    );
    expect(node.code).toBe(107);
    expect(node.output).toContain("'node:fs'");
  });
});
