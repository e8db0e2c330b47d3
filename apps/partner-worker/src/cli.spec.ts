import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateStore } from '@certflow/partner-client';
import { parseCertificate } from '@certflow/certs';
import { runCli, type CliIo } from './cli';
import { json, tempDir, type StubAuthority, type TestServer } from '@certflow/testing';
import { startPartnerStubs } from './stub-servers.test-helpers';

interface Run {
  code: number;
  out: string[];
  err: string;
  events: Record<string, unknown>[];
}

async function run(argv: string[], env: Record<string, string | undefined>, cwd: string): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { env, cwd, stdout: (l) => out.push(l), stderr: (l) => err.push(l) };
  const code = await runCli(argv, io);
  const events = out.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  return { code, out, err: err.join('\n'), events };
}

describe('CLI', () => {
  const dir = tempDir();
  const cwd = dir.path;

  afterAll(() => dir.remove());

  describe('usage', () => {
    it.each([
      [[]],
      [['cert']],
      [['cert', 'delete']],
      [['token', 'get', '--times', '2']],
      [['cert', 'show', '--bogus']],
      [['cert', 'create', '--days', 'ten']],
      [['cert', 'create', '--days', '0']],
      [['cert', 'create', '--common-name', '']],
      [['call']],
      [['call', 'orders']],
      [['call', '/orders', '--times', '0']],
      [['call', '/orders', 'extra']],
      [['token', 'get', 'extra']],
    ])('%j is a usage error (exit 2)', async (argv) => {
      const r = await run(argv, {}, cwd);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/^partner-worker: /);
      expect(r.err).toContain('Usage: partner-worker');
      expect(r.out).toEqual([]);
    });

    it('prints help', async () => {
      for (const argv of [['help'], ['--help'], ['-h']]) {
        const r = await run(argv, {}, cwd);
        expect(r.code).toBe(0);
        expect(r.out.join('\n')).toMatch(
          /cert create \[--common-name CN\] \[--days N\] \[--key-size 2048\|3072\|4096\]\n\s+\[--key-store pkcs11:URI\|file\] \[--force\] \[--json\]/,
        );
      }
    });
  });

  describe('cert', () => {
    const env = { PARTNER_CERT_DIR: 'p1' };

    it('show fails clearly before create; create writes the files and prints one JSON object', async () => {
      const before = await run(['cert', 'show', '--json'], env, cwd);
      expect(before.code).toBe(1);
      expect(before.err).toMatch(/no partner certificate in .*p1.*cert create/);

      const created = await run(
        ['cert', 'create', '--common-name', 'contoso-partner', '--days', '90', '--json'],
        env,
        cwd,
      );
      expect(created.code).toBe(0);
      expect(created.out).toHaveLength(1);
      const info = created.events[0]!;
      expect(info).toMatchObject({
        event: 'certificate',
        created: true,
        subject: 'CN=contoso-partner',
        status: 'valid',
        certificateDirectory: join(cwd, 'p1'),
      });
      expect(statSync(String(info.privateKeyPath)).mode & 0o777).toBe(0o600);
      expect(JSON.stringify(info)).not.toMatch(/PRIVATE KEY/);
      const thumbprints = info.thumbprints as { sha256Hex: string };
      expect(
        parseCertificate(new CertificateStore(join(cwd, 'p1')).load().certificate.der).thumbprints.sha256Hex,
      ).toBe(thumbprints.sha256Hex);

      const again = await run(['cert', 'create'], env, cwd);
      expect(again.code).toBe(1);
      expect(again.err).toMatch(/already exists.*--force/);

      const shown = await run(['cert', 'show', '--json'], env, cwd);
      expect(shown.code).toBe(0);
      expect(shown.events[0]).toMatchObject({
        event: 'certificate',
        created: false,
        thumbprints: { sha256Hex: thumbprints.sha256Hex },
      });

      const forced = await run(['cert', 'create', '--force'], env, cwd);
      expect(forced.code).toBe(0);
      expect(forced.out.join('\n')).toMatch(/SHA-256 +[0-9A-F]{64}/);
      expect(forced.out.join('\n')).toContain('partner.cer');
    });

    it('show reports an expired certificate and exits 1', async () => {
      new CertificateStore(join(cwd, 'expired')).create({
        days: 1,
        now: new Date(Date.now() - 5 * 86_400_000),
      });
      const r = await run(['cert', 'show'], { PARTNER_CERT_DIR: 'expired' }, cwd);
      expect(r.code).toBe(1);
      expect(r.out.join('\n')).toContain('expired');
      expect(r.err).toMatch(/certificate is expired/);
    });
  });

  describe('token get and call against local servers', () => {
    let authority: StubAuthority;
    let api: TestServer;
    let env: Record<string, string>;
    /** The traceparent of each API request, in order. */
    const traceparents: (string | undefined)[] = [];

    beforeAll(async () => {
      ({ authority, api, env } = await startPartnerStubs(cwd, {
        certDir: 'p2',
        commonName: 'contoso-partner',
        handler: (req, _body, res) => {
          traceparents.push(req.headers.traceparent as string | undefined);
          if (!req.headers.authorization?.startsWith('Bearer '))
            return json(res, 401, { statusCode: 401, message: 'no token' });
          if (req.url === '/orders') return json(res, 200, [{ id: 'o-1' }]);
          return json(res, 403, { statusCode: 403, message: 'Forbidden' });
        },
      }));
    });
    afterAll(async () => {
      await authority.close();
      await api.close();
    });

    it('token get --json prints the assertion and the token claims, never the token', async () => {
      const r = await run(['token', 'get', '--json'], env, cwd);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.events.map((e) => e.event)).toEqual(['assertion', 'token']);
      expect(r.events[0]).toMatchObject({
        header: { alg: 'PS256', typ: 'JWT' },
        claims: { iss: env.PARTNER_CLIENT_ID, sub: env.PARTNER_CLIENT_ID },
      });
      expect(Object.keys(r.events[0]!)).toEqual(['event', 'header', 'claims']);
      expect(r.events[1]).toMatchObject({ source: 'network', claims: { roles: ['Orders.Read'] } });
      expect(new Date(String(r.events[1]!.expiresOn)).getTime()).toBeGreaterThan(Date.now());
      expect(r.out.join('\n')).not.toContain('c2lnbmF0dXJl'); // the access token's signature
    });

    it('call --times 2 --json: assertion, token (network), response, token (cache), response', async () => {
      traceparents.length = 0;
      const r = await run(['call', '/orders', '--times', '2', '--json'], env, cwd);
      expect(r.code).toBe(0);
      expect(r.events.map((e) => (e.event === 'token' ? `token:${String(e.source)}` : e.event))).toEqual([
        'assertion',
        'token:network',
        'response',
        'token:cache',
        'response',
      ]);
      expect(r.events[2]).toEqual({
        event: 'response',
        status: 200,
        body: [{ id: 'o-1' }],
        traceId: expect.stringMatching(/^[0-9a-f]{32}$/),
        spanId: expect.stringMatching(/^[0-9a-f]{16}$/),
      });
      // Each call sent its own trace as traceparent, and its event names it.
      expect(traceparents).toEqual(
        [r.events[2]!, r.events[4]!].map((e) => `00-${String(e.traceId)}-${String(e.spanId)}-00`),
      );
    });

    it('call exits 1 after printing the response event when the API says 403', async () => {
      const r = await run(['call', '/admin', '--json'], env, cwd);
      expect(r.code).toBe(1);
      expect(r.events.at(-1)).toEqual({
        event: 'response',
        status: 403,
        body: { statusCode: 403, message: 'Forbidden' },
        traceId: expect.stringMatching(/^[0-9a-f]{32}$/),
        spanId: expect.stringMatching(/^[0-9a-f]{16}$/),
      });
      expect(r.err).toMatch(/GET \/admin answered HTTP 403/);
    });

    it('fails before any network call when a variable is wrong or the certificate is unusable', async () => {
      const before = authority.tokenRequests;
      const bad = await run(['token', 'get'], { ...env, PARTNER_SCOPE: 'api://x/read' }, cwd);
      expect(bad.code).toBe(1);
      expect(bad.err).toMatch(/PARTNER_SCOPE/);
      const missing = await run(['call', '/orders'], { ...env, PARTNER_API_BASE_URL: '' }, cwd);
      expect(missing.err).toMatch(/PARTNER_API_BASE_URL: is required/);
      new CertificateStore(join(cwd, 'old')).create({ days: 1, now: new Date(Date.now() - 5 * 86_400_000) });
      const expired = await run(['token', 'get'], { ...env, PARTNER_CERT_DIR: 'old' }, cwd);
      expect(expired.code).toBe(1);
      expect(expired.err).toMatch(/certificate expired at/);
      expect(authority.tokenRequests).toBe(before);
    });

    it('names the TLS problem when PARTNER_CA_FILE is missing', async () => {
      const r = await run(['token', 'get'], { ...env, PARTNER_CA_FILE: undefined }, cwd);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/);
      expect(r.err).toMatch(/PARTNER_CA_FILE/);
    });
  });
});
