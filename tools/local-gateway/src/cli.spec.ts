import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseGatewayArgs, runCli } from './cli';
import { CLOCK_FILE_POLL_MS, writeClockFile } from '@certflow/clock';
import {
  httpsCall,
  startEchoUpstream,
  startTestIssuer,
  tempStateDir,
  type TestIssuer,
} from './test-servers.test-helpers';

const REQUIRED = ['--state-dir', '/tmp/s', '--policy', 'p.xml', '--backend', 'http://127.0.0.1:3000'];

async function usage(argv: string[]): Promise<{ exitCode: number; stderr: string }> {
  const err: string[] = [];
  const { exitCode } = await runCli(argv, { stdout: () => undefined, stderr: (l) => err.push(l) }, {});
  return { exitCode, stderr: err.join('\n') };
}

describe('gateway CLI', () => {
  const state = tempStateDir();
  afterAll(() => state.remove());

  it('parses flags, repeated named values included', () => {
    const { options } = parseGatewayArgs([
      ...REQUIRED,
      '--named-value',
      'tenant-id=abc',
      '--named-value',
      'x=a=b',
      '--port',
      '8443',
      '--host',
      '0.0.0.0',
    ]);
    expect(options).toMatchObject({
      stateDir: '/tmp/s',
      policyFile: 'p.xml',
      backendUrl: 'http://127.0.0.1:3000',
      port: 8443,
      host: '0.0.0.0',
      namedValues: { 'tenant-id': 'abc', x: 'a=b' },
    });
  });

  it('takes timeouts, limits and allowed host names, and names a bad one', async () => {
    const { options } = parseGatewayArgs([
      ...REQUIRED,
      '--header-timeout-ms',
      '2000',
      '--body-timeout-ms',
      '3000',
      '--body-memory-bytes',
      '1048576',
      '--keep-alive-timeout-ms',
      '4000',
      '--upstream-timeout-ms',
      '5000',
      '--max-url-bytes',
      '4096',
      '--allowed-host',
      'Gateway.Example',
      '--allowed-host',
      'api.internal',
    ]);
    expect(options).toMatchObject({
      headerTimeoutMs: 2000,
      bodyTimeoutMs: 3000,
      bodyMemoryBytes: 1048576,
      keepAliveTimeoutMs: 4000,
      upstreamTimeoutMs: 5000,
      maxUrlBytes: 4096,
      allowedHosts: ['gateway.example', 'api.internal'],
    });
    for (const [flag, value] of [
      ['--header-timeout-ms', '0'],
      ['--body-timeout-ms', '1.5'],
      ['--body-memory-bytes', '1e6'],
      ['--max-url-bytes', 'lots'],
    ] as const) {
      const { exitCode, stderr } = await usage([...REQUIRED, flag, value]);
      expect(exitCode).toBe(2);
      expect(stderr).toContain(`${flag} must be a positive integer, got '${value}'`);
    }
    const badHost = await usage([...REQUIRED, '--allowed-host', 'evil.example:443']);
    expect(badHost.exitCode).toBe(2);
    expect(badHost.stderr).toMatch(/^--allowed-host: allowed host .*evil\.example:443/);
  });

  it('takes scopes, subscription keys and the metrics path', () => {
    const { options } = parseGatewayArgs([
      ...REQUIRED,
      '--global-policy',
      'global.xml',
      '--operation',
      'GET /orders/{id}=op.xml',
      '--subscription-key',
      'contoso=key-1-aaaaaaaa',
      '--subscription-key',
      'contoso=key-2-bbbbbbbb',
      '--subscription-required',
      '--metrics-path',
      'off',
    ]);
    expect(options).toMatchObject({
      globalPolicyFile: 'global.xml',
      operations: [{ method: 'GET', urlTemplate: '/orders/{id}', policyFile: 'op.xml' }],
      subscriptionKeys: {
        required: true,
        subscriptions: [{ id: 'contoso', keys: ['key-1-aaaaaaaa', 'key-2-bbbbbbbb'] }],
      },
      metricsPath: false,
    });
  });

  it('takes --redis-url for shared rate-limit counters', () => {
    expect(parseGatewayArgs([...REQUIRED, '--redis-url', 'redis://127.0.0.1:6379/0']).options.redisUrl).toBe(
      'redis://127.0.0.1:6379/0',
    );
  });

  it.each([
    [['--state-dir', 'd', '--policy', 'p'], /--backend is required/],
    [[...REQUIRED, '--port', 'http'], /--port must be a port number/],
    [[...REQUIRED, '--port', '70000'], /--port must be a port number/],
    [[...REQUIRED, '--named-value', 'novalue'], /--named-value must be NAME=VALUE/],
    [[...REQUIRED, '--colour', 'blue'], /--colour/],
    [['--state-dir', 'd', '--policy', 'p', '--backend', 'https://api'], /--backend must be an http:\/\/ URL/],
    [[...REQUIRED, '--ca-file', '/nonexistent.pem'], /--ca-file: cannot read/],
    [
      [...REQUIRED, '--client-cert-mode', 'lenient', '--client-ca-file', 'x.pem'],
      /--client-cert-mode must be strict or passthrough/,
    ],
    [[...REQUIRED, '--client-cert-mode', 'strict'], /--client-cert-mode needs --client-ca-file/],
    [[...REQUIRED, '--client-ca-file', '/nonexistent.pem'], /--client-ca-file: cannot read/],
    [[...REQUIRED, '--operation', 'GET orders=x.xml'], /--operation must be "METHOD \/template=FILE"/],
    [
      [...REQUIRED, '--subscription-required'],
      /--subscription-required needs at least one --subscription-key/,
    ],
    [[...REQUIRED, '--metrics-path', 'metrics'], /--metrics-path must start with \//],
    [[...REQUIRED, '--entra-instance', 'http://login.example'], /--entra-instance must be an https:\/\/ URL/],
    [
      [...REQUIRED, '--redis-url', 'http://127.0.0.1:6379'],
      /--redis-url must be a redis:\/\/ or rediss:\/\/ URL/,
    ],
  ])('exits 2 naming the flag: %j', async (argv, message) => {
    const { exitCode, stderr } = await usage(argv);
    expect(exitCode).toBe(2);
    expect(stderr).toMatch(message);
  });

  /** The API's real policy in front of an echo upstream, trusting `issuer`. */
  const apiArgs = (issuer: TestIssuer, upstream: { url: string }): string[] => [
    '--state-dir',
    state.dir,
    '--policy',
    resolve(__dirname, '../../../apps/api/apim/policy.xml'),
    '--backend',
    upstream.url,
    '--named-value',
    `entra-instance=${issuer.url}`,
    '--named-value',
    `tenant-id=${issuer.tenantId}`,
    '--named-value',
    'api-app-id=app',
    '--named-value',
    'api-app-id-uri=api://orders',
    '--ca-file',
    join(state.dir, 'ca', 'ca.crt.pem'),
  ];

  it('starts the gateway and prints the listening line', async () => {
    const issuer = await startTestIssuer(state.dir);
    const upstream = await startEchoUpstream();
    const out: string[] = [];
    const { exitCode, gateway } = await runCli(
      apiArgs(issuer, upstream),
      { stdout: (l) => out.push(l), stderr: (l) => out.push(l) },
      {},
    );
    try {
      expect(exitCode).toBe(0);
      expect(JSON.parse(out[0]!)).toEqual({ event: 'listening', url: gateway!.url });
      const token = await issuer.sign({
        aud: 'app',
        iss: issuer.issuer,
        exp: Math.floor(Date.now() / 1000) + 600,
      });
      const res = await httpsCall(`${gateway!.url}/orders`, {
        caPem: issuer.caPem,
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(200);
      // Access-log lines are written in batches (every 100 ms): closing flushes what is pending.
      await gateway!.close();
      expect(JSON.parse(out[1]!)).toMatchObject({ event: 'request', path: '/orders', status: 200 });
    } finally {
      await gateway?.close();
      await upstream.close();
      await issuer.close();
    }
  });

  it('judges token lifetimes by the clock of CERTFLOW_CLOCK_FILE, and follows the file while it runs', async () => {
    const issuer = await startTestIssuer(state.dir);
    const upstream = await startEchoUpstream();
    const clockFile = join(state.dir, 'clock.json');
    writeClockFile(clockFile, 3_600_000);
    const stderr: string[] = [];
    const { exitCode, gateway } = await runCli(
      apiArgs(issuer, upstream),
      { stdout: () => undefined, stderr: (l) => stderr.push(l) },
      { CERTFLOW_CLOCK_FILE: clockFile },
    );
    try {
      expect(exitCode).toBe(0);
      expect(stderr).toEqual([
        `local-gateway: clock: shifted by +1h from the real time and follows CERTFLOW_CLOCK_FILE=${clockFile}`,
      ]);
      // Valid for ten more real minutes: already expired an hour later.
      const token = await issuer.sign({
        aud: 'app',
        iss: issuer.issuer,
        exp: Math.floor(Date.now() / 1000) + 600,
      });
      const call = () =>
        httpsCall(`${gateway!.url}/orders`, {
          caPem: issuer.caPem,
          headers: { authorization: `Bearer ${token}` },
        });
      const refused = await call();
      expect(refused.status).toBe(401);
      writeClockFile(clockFile, 0);
      await new Promise((resolve) => setTimeout(resolve, CLOCK_FILE_POLL_MS * 3));
      expect((await call()).status).toBe(200);
      writeClockFile(clockFile, 3_600_000); // a cached verified token is still judged by the clock
      await new Promise((resolve) => setTimeout(resolve, CLOCK_FILE_POLL_MS * 3));
      expect((await call()).status).toBe(401);
    } finally {
      await gateway?.close();
      await upstream.close();
      await issuer.close();
    }
  });

  it('exits 2 naming CERTFLOW_CLOCK_OFFSET when it is not an offset', async () => {
    const issuer = await startTestIssuer(state.dir);
    const stderr: string[] = [];
    try {
      const { exitCode, gateway } = await runCli(
        apiArgs(issuer, { url: 'http://127.0.0.1:1' }),
        { stdout: () => undefined, stderr: (l) => stderr.push(l) },
        { CERTFLOW_CLOCK_OFFSET: 'tomorrow' },
      );
      expect(gateway).toBeUndefined();
      expect(exitCode).toBe(2);
      expect(stderr.join('\n')).toContain('CERTFLOW_CLOCK_OFFSET "tomorrow" is not a clock offset');
    } finally {
      await issuer.close();
    }
  });

  it('exits 1 with the policy error when the policy does not load', async () => {
    const { exitCode, stderr } = await usage([
      '--state-dir',
      state.dir,
      '--policy',
      resolve(__dirname, '../../../apps/api/apim/policy.xml'),
      '--backend',
      'http://127.0.0.1:1',
    ]);
    expect(exitCode).toBe(1);
    expect(stderr).toMatch(
      /policy\.xml:\d+: <openid-config>: attribute url: unknown named value 'entra-instance'/,
    );
  });
});
