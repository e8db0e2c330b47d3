/**
 * The CLI's `token decode`, and the usage, help and configuration checks of `serve` and `run`
 * (their behaviour against real servers is in facade.spec.ts).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { CertificateStore } from '@certflow/partner-client';
import { runCli, USAGE, type CliIo } from './cli';
import { fakeJwt, tempDir } from '@certflow/testing';

interface Run {
  code: number;
  out: string;
  err: string;
}

async function run(
  argv: string[],
  opts: { env?: Record<string, string>; stdin?: string } = {},
): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = {
    env: opts.env ?? {},
    cwd: dir.path,
    stdout: (l) => out.push(l),
    stderr: (l) => err.push(l),
    ...(opts.stdin !== undefined ? { readStdin: () => Promise.resolve(opts.stdin!) } : {}),
  };
  const code = await runCli(argv, io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const dir = tempDir();
afterAll(() => dir.remove());

describe('token decode', () => {
  const now = Math.floor(Date.now() / 1000);
  const token = fakeJwt({
    aud: 'api://orders',
    azp: 'partner',
    iat: now,
    exp: now + 3600,
    roles: ['Orders.Read'],
  });
  const signature = token.split('.')[2]!;

  it('prints the header and claims from the argument, says they are not verified, never the signature', async () => {
    const r = await run(['token', 'decode', token]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^NOT VERIFIED/);
    expect(r.out).toContain('"kid": "test"');
    expect(r.out).toContain('"azp": "partner"');
    expect(r.out).toContain(`exp  ${new Date((now + 3600) * 1000).toISOString()}`);
    expect(r.out).not.toContain(signature);
    expect(r.out).not.toContain(token);
  });

  it('reads stdin (a "Bearer " prefix and whitespace are fine); --json gives one decoded event', async () => {
    const expired = fakeJwt({ aud: 'x', exp: now - 10 });
    const r = await run(['token', 'decode', '--json'], { stdin: `Bearer ${expired}\n` });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({
      event: 'decoded',
      verified: false,
      header: { typ: 'JWT', alg: 'RS256', kid: 'test' },
      claims: { aud: 'x', exp: now - 10 },
      expired: true,
    });
  });

  it('refuses what is not a signed JWT, and asks for a token when there is none', async () => {
    expect(await run(['token', 'decode', 'a.b.c.d.e'])).toMatchObject({
      code: 1,
      err: expect.stringMatching(/encrypted token \(JWE\)/),
    });
    expect(await run(['token', 'decode', 'not-a-token'])).toMatchObject({
      code: 1,
      err: expect.stringMatching(/not a JWT/),
    });
    expect(await run(['token', 'decode', 'e30.bm9wZQ.x'])).toMatchObject({
      code: 1,
      err: expect.stringMatching(/not a JWT/),
    });
    expect(await run(['token', 'decode'])).toMatchObject({
      code: 2,
      err: expect.stringMatching(/needs a token/),
    });
    expect(await run(['token', 'decode'], { stdin: '  \n' })).toMatchObject({ code: 2 });
  });
});

describe('help', () => {
  it('lists every command', async () => {
    const r = await run(['help']);
    expect(r.out).toBe(USAGE);
    for (const command of [
      'cert create',
      'cert rotate',
      'token get',
      'token decode',
      'call <path>',
      'serve [--port N]',
      'run --path P',
    ])
      expect(USAGE).toContain(command);
  });

  it.each([
    [['serve', '--help'], /"event":"listening","url":"http:\/\/127\.0\.0\.1:PORT"/],
    [['help', 'serve'], /GET +\/call\/<api path and query>/],
    [['run', '--help'], /\{"event":"stopped","calls":…,"failed":…\}/],
    [['token', 'decode', '--help'], /Nothing is verified/],
  ])("%j prints that command's help", async (argv, pattern) => {
    const r = await run(argv);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(pattern);
  });
});

describe('serve and run: usage and configuration', () => {
  const store = new CertificateStore(`${dir.path}/partner`);
  store.create({ commonName: 'usage' });
  const env = {
    ENTRA_INSTANCE: 'https://localhost:1',
    PARTNER_TENANT_ID: '11111111-1111-1111-1111-111111111111',
    PARTNER_CLIENT_ID: '22222222-2222-2222-2222-222222222222',
    PARTNER_SCOPE: 'api://orders/.default',
    PARTNER_API_BASE_URL: 'http://127.0.0.1:1',
    PARTNER_CERT_DIR: store.directory,
  };

  it.each([
    [['serve', '--port', '70000'], /--port must be a port number from 0 to 65535/],
    [['serve', '--times', '2'], /serve does not take --times/],
    [['serve', 'extra'], /unexpected argument "extra"/],
    [['run'], /run needs --path/],
    [['run', '--path', 'orders'], /--path must start with "\/"/],
    [['run', '--path', '/orders', '--interval-ms', '0'], /--interval-ms must be a whole number from 1/],
    [['run', '--path', '/orders', '--times', 'x'], /--times must be a whole number/],
  ])('%j is a usage error', async (argv, pattern) => {
    const r = await run(argv, { env });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(pattern);
  });

  it.each([
    [['serve'], 'PARTNER_API_BASE_URL', { PARTNER_API_BASE_URL: '' }],
    [['serve'], 'PARTNER_APP_OBJECT_ID', { PARTNER_APP_OBJECT_ID: 'not-a-guid' }],
    [
      ['run', '--path', '/orders'],
      'PARTNER_CERT_EXPIRY_WARNING_DAYS',
      { PARTNER_CERT_EXPIRY_WARNING_DAYS: '-1' },
    ],
    [['run', '--path', '/orders'], 'PARTNER_REDIS_URL', { PARTNER_REDIS_URL: 'http://localhost' }],
  ])('%j with a bad %s stops at start-up, naming it', async (argv, variable, bad) => {
    const r = await run(argv, { env: { ...env, ...bad } });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(new RegExp(`error: ${variable}: `));
  });

  it('run refuses a path that leaves the API base URL before any call', async () => {
    const r = await run(['run', '--path', '//evil.example/x', '--times', '1'], { env });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/must not start with "\/\/"/);
    expect(r.out).toBe('');
  });
});
