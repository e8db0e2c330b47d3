/**
 * `serve` as the built CLI, in separate processes as a partner runs it, against the real Entra ID
 * emulator and an API that verifies every token; `cert rotate` runs in yet another process while
 * `serve` takes continuous calls, and POST /rotate rotates in process.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type TokenAcquisitionError } from '@certflow/partner-client';
import { http, metric, until, startCli, LIFETIME_S, useFacadeFixture } from './facade.test-helpers';
import { rejectionOf } from '@certflow/testing';

describe('serve (built CLI) against the emulator and a verifying API', () => {
  const f = useFacadeFixture();

  it('serve (built CLI): one "listening" line; cert rotate in another process under continuous calls: zero failed calls, the old certificate refused afterwards; SIGTERM stops it', async () => {
    const { store, credential, keyId } = await f.registeredCertificate('facade-serve');
    const serve = startCli(['serve', '--port', '0'], f.env(store.directory), f.dir.path);
    f.closers.push(() => void serve.child.kill('SIGKILL'));
    await until('the listening line', () => serve.stdout.length > 0 || serve.child.exitCode !== null);
    expect(serve.stdout).toHaveLength(1);
    const listening = JSON.parse(serve.stdout[0]!) as { event: string; url: string };
    expect(listening).toEqual({
      event: 'listening',
      url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
    });

    let calls = 0;
    const failures: string[] = [];
    let running = true;
    const load = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (running) {
          const answer = await http('GET', `${listening.url}/call/orders`).catch((err: Error) => ({
            status: 0,
            text: err.message,
          }));
          calls++;
          if (answer.status !== 200) failures.push(`${answer.status} ${answer.text}`);
        }
      }),
    );
    await until('first calls', () => calls > 20);
    const rotate = startCli(
      ['cert', 'rotate', '--old-key-id', keyId, '--json'],
      f.env(store.directory, {
        PARTNER_APP_OBJECT_ID: f.partner.objectId,
        PARTNER_GRAPH_URL: f.emulator.graphUrl,
      }),
      f.dir.path,
    );
    expect(await rotate.exited).toBe(0);
    const rotated = store.load();
    expect(rotated.certificate.thumbprints.sha256Hex).not.toBe(credential.certificate.thumbprints.sha256Hex);
    await until('the switch in serve', () =>
      serve.stderr.some((l) =>
        l.includes(`switched to the certificate ${rotated.certificate.thumbprints.sha256Hex}`),
      ),
    );
    const before = (await http('GET', `${listening.url}/metrics`)).text;
    // Keep calling for more than a token lifetime: the tokens now come from the new certificate.
    const until2 = Date.now() + (LIFETIME_S + 2) * 1000;
    await until('a token lifetime of calls', () => Date.now() > until2, (LIFETIME_S + 10) * 1000);
    running = false;
    await load;
    const after = (await http('GET', `${listening.url}/metrics`)).text;

    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(100);
    expect(metric(after, 'partner_certificate_switches_total')).toBe(1);
    expect(metric(after, 'partner_token_requests_total', 'outcome="success"')).toBeGreaterThan(
      metric(before, 'partner_token_requests_total', 'outcome="success"'),
    );
    // (A refresh that started in the instant between the file switch and removeKey may have been
    // refused and retried in the background; calls never saw it.)
    expect(f.refused).toBe(0);
    // The old certificate was removed from the registration: it gets no token any more.
    const old = await rejectionOf<TokenAcquisitionError>(
      f.tokenClient(credential).fetchToken({ skipCache: true }),
    );
    expect(old.aadsts).toBe('700027');

    serve.child.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
    expect(serve.stdout).toHaveLength(1);
    expect(serve.stderr.join('\n')).toContain('stopped');
    expect(serve.stderr.join('\n')).not.toMatch(/not loopback/);
    expect(serve.stderr.join('\n')).not.toMatch(/eyJ[\w-]+\.[\w-]+\./);
  }, 90_000);

  it('serve: SIGTERM lets a call in progress finish, then exits 0', async () => {
    const { store } = await f.registeredCertificate('facade-graceful');
    const serve = startCli(['serve'], f.env(store.directory), f.dir.path);
    f.closers.push(() => void serve.child.kill('SIGKILL'));
    await until('the listening line', () => serve.stdout.length > 0 || serve.child.exitCode !== null);
    const { url } = JSON.parse(serve.stdout[0]!) as { url: string };
    expect((await http('GET', `${url}/call/orders`)).status).toBe(200);
    const slow = http('GET', `${url}/call/slow`);
    await new Promise((r) => setTimeout(r, 200));
    serve.child.kill('SIGTERM');
    expect((await slow).status).toBe(200);
    expect(await serve.exited).toBe(0);
  }, 30_000);

  it('serve --allowed-host and PARTNER_ALLOWED_HOSTS: the names are answered, bad names stop start-up', async () => {
    const { store } = await f.registeredCertificate('facade-allowed-hosts');
    const serve = startCli(
      ['serve', '--allowed-host', 'flag.test'],
      f.env(store.directory, { PARTNER_ALLOWED_HOSTS: 'env-a.test, env-b.test' }),
      f.dir.path,
    );
    f.closers.push(() => void serve.child.kill('SIGKILL'));
    await until('the listening line', () => serve.stdout.length > 0 || serve.child.exitCode !== null);
    const { url } = JSON.parse(serve.stdout[0]!) as { url: string };
    const port = new URL(url).port;
    for (const name of ['flag.test', 'env-a.test', 'env-b.test'])
      expect((await http('GET', `${url}/health`, { host: `${name}:${port}` })).status).toBe(200);
    expect((await http('GET', `${url}/health`, { host: `other.test:${port}` })).status).toBe(421);
    serve.child.kill('SIGTERM');
    expect(await serve.exited).toBe(0);

    const badFlag = startCli(
      ['serve', '--allowed-host', 'flag.test:8080'],
      f.env(store.directory),
      f.dir.path,
    );
    expect(await badFlag.exited).toBe(2);
    expect(badFlag.stderr.join('\n')).toMatch(
      /--allowed-host: allowed host "flag\.test:8080" is not a host name/,
    );
    const badEnv = startCli(
      ['serve'],
      f.env(store.directory, { PARTNER_ALLOWED_HOSTS: '*.test' }),
      f.dir.path,
    );
    expect(await badEnv.exited).toBe(1);
    expect(badEnv.stderr.join('\n')).toMatch(/PARTNER_ALLOWED_HOSTS: allowed host "\*\.test"/);
    expect(badFlag.stdout.concat(badEnv.stdout)).toEqual([]);
  }, 30_000);

  it('serve on a non-loopback address says at start that anyone reaching it calls the API as the partner', async () => {
    const { store } = await f.registeredCertificate('facade-exposed');
    const serve = startCli(['serve', '--host', '0.0.0.0'], f.env(store.directory), f.dir.path);
    f.closers.push(() => void serve.child.kill('SIGKILL'));
    await until('the listening line', () => serve.stdout.length > 0 || serve.child.exitCode !== null);
    expect(serve.stderr.join('\n')).toMatch(
      /warning: serving on 0\.0\.0\.0, not loopback: anyone who can reach it calls the API as this partner/,
    );
    serve.child.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
  }, 30_000);

  it('serve: POST /rotate rotates in process (loopback only, no Origin), then calls use the new certificate', async () => {
    const { store, credential, keyId } = await f.registeredCertificate('facade-post-rotate');
    writeFileSync(join(store.directory, 'partner.key-id'), `${keyId}\n`);
    const serve = startCli(
      ['serve'],
      f.env(store.directory, {
        PARTNER_APP_OBJECT_ID: f.partner.objectId,
        PARTNER_GRAPH_URL: f.emulator.graphUrl,
      }),
      f.dir.path,
    );
    f.closers.push(() => void serve.child.kill('SIGKILL'));
    await until('the listening line', () => serve.stdout.length > 0 || serve.child.exitCode !== null);
    const { url } = JSON.parse(serve.stdout[0]!) as { url: string };
    expect((await http('GET', `${url}/call/orders`)).status).toBe(200);
    expect((await http('POST', `${url}/rotate`, { origin: 'https://evil.example' })).status).toBe(403);
    const answer = await http('POST', `${url}/rotate`);
    expect(answer.status).toBe(200);
    const body = JSON.parse(answer.text) as {
      status: string;
      removedKeyId: string;
      certificate: { thumbprintSha256: string };
    };
    expect(body).toMatchObject({ status: 'rotated', removedKeyId: keyId });
    expect(body.certificate.thumbprintSha256).toBe(store.load().certificate.thumbprints.sha256Hex);
    expect(body.certificate.thumbprintSha256).not.toBe(credential.certificate.thumbprints.sha256Hex);
    // A token lifetime later every call still succeeds: the refreshes signed with the new key.
    const end = Date.now() + (LIFETIME_S + 2) * 1000;
    while (Date.now() < end) {
      expect((await http('GET', `${url}/call/orders`)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 50));
    }
    const metrics = (await http('GET', `${url}/metrics`)).text;
    expect(metric(metrics, 'partner_certificate_switches_total')).toBe(1);
    expect(metric(metrics, 'partner_token_requests_total', 'outcome="error"')).toBe(0);
    serve.child.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
  }, 90_000);
});
