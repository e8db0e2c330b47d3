/**
 * The facade in process (a PartnerWorker configured from the environment like the CLI) against
 * the real Entra ID emulator and an API that verifies every token: GET /call, /metrics, /health,
 * the Host and Origin guard, failures, and certificate files changing under it.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CertificateStore } from '@certflow/partner-client';
import { http, metric, until, useFacadeFixture } from './facade.test-helpers';

describe('facade in process against the emulator and a verifying API', () => {
  const f = useFacadeFixture();

  it('GET /call/<path>: upstream status and body, one token request for 200 concurrent calls, never a token in a response', async () => {
    const { store } = await f.registeredCertificate('facade-basic');
    const { facade } = await f.inProcess(store.directory);
    const answers = await Promise.all(
      Array.from({ length: 200 }, () => http('GET', `${facade.url}/call/orders?page=2`)),
    );
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    expect(JSON.parse(answers[0]!.text)).toEqual({
      orders: [{ id: 1 }],
      caller: f.partner.appId,
      url: '/orders?page=2',
      traceparent: expect.stringMatching(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/),
    });
    // Each call a new trace; a caller's traceparent is continued (same trace, the partner's own span).
    const traces = answers.map((a) =>
      (JSON.parse(a.text) as { traceparent: string }).traceparent.slice(3, 35),
    );
    expect(new Set(traces).size).toBe(answers.length);
    const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const continued = await http('GET', `${facade.url}/call/orders`, { traceparent: incoming });
    const sent = (JSON.parse(continued.text) as { traceparent: string }).traceparent;
    expect(sent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    expect(sent).not.toBe(incoming);

    const teapot = await http('GET', `${facade.url}/call/status/418`);
    expect(teapot.status).toBe(418);
    expect(JSON.parse(teapot.text)).toEqual({ status: 418 });
    const text = await http('GET', `${facade.url}/call/text`);
    expect(text).toMatchObject({ status: 200, text: 'plain words' });
    expect(text.headers['content-type']).toBe('text/plain');

    const metrics = await http('GET', `${facade.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    // One request for the 200 cold callers (plus one per background refresh, should this slow
    // machine reach the refresh-ahead point of the 8-second tokens).
    expect(metric(metrics.text, 'partner_token_requests_total', 'outcome="success"')).toBe(
      1 + metric(metrics.text, 'partner_token_refreshes_total'),
    );
    expect(
      metric(metrics.text, 'partner_token_cache_misses_total') +
        metric(metrics.text, 'partner_token_cache_hits_total'),
    ).toBe(203);
    expect(metric(metrics.text, 'partner_calls_total', 'outcome="ok",status="200"')).toBe(202);
    expect(metric(metrics.text, 'partner_calls_total', 'outcome="upstream",status="418"')).toBe(1);
    expect(metric(metrics.text, 'partner_call_duration_seconds_count', 'outcome="ok"')).toBe(202);
    expect(metric(metrics.text, 'partner_certificate_days_until_expiry')).toBeGreaterThan(360);
    expect(metric(metrics.text, 'partner_certificate_expiring')).toBe(0);
    for (const name of [
      'partner_token_refreshes_total',
      'partner_shared_cache_hits_total',
      'partner_shared_cache_fallbacks_total',
    ])
      expect(metrics.text).toContain(`\n${name} `);

    const health = await http('GET', `${facade.url}/health`);
    expect(JSON.parse(health.text)).toMatchObject({
      status: 'ok',
      certificate: { daysUntilExpiry: expect.any(Number) },
    });
    expect(await http('GET', `${facade.url}/nope`)).toMatchObject({ status: 404 });
    expect(JSON.parse((await http('GET', `${facade.url}/nope`)).text)).toEqual({
      error: 'not_found',
      path: '/nope',
    });
    expect((await http('POST', `${facade.url}/call/orders`)).status).toBe(405);
    const escape = await http('GET', `${facade.url}/call//evil.example/steal`);
    expect(escape.status).toBe(400);
    expect(JSON.parse(escape.text)).toMatchObject({ error: 'invalid_path' });
    const rotate = await http('POST', `${facade.url}/rotate`);
    expect(rotate.status).toBe(409);
    expect(JSON.parse(rotate.text)).toMatchObject({ error: 'rotation_not_configured' });

    for (const answer of [...answers, teapot, metrics, health])
      for (const token of f.seenTokens) expect(answer.text).not.toContain(token);
  }, 60_000);

  it('serve refuses DNS rebinding (421, connection closed) and cross-site requests (403): no token fetched, no API call', async () => {
    const { store } = await f.registeredCertificate('facade-rebinding');
    const { facade, worker, logs } = await f.inProcess(store.directory, ['partner.test']);
    const own = `localhost:${facade.port}`;
    const tokensBefore = await f.issuedTokens();
    const apiBefore = { accepted: f.seenTokens.size, refused: f.refused };
    const attacks: [Record<string, string>, number][] = [
      [{ host: `attacker.example:${facade.port}`, origin: `http://attacker.example:${facade.port}` }, 421],
      [{ host: 'attacker.example' }, 421],
      [{ host: `localhost.:${facade.port}` }, 421],
      [{ host: `localhost:${facade.port + 1}` }, 421],
      [{ host: own, origin: 'https://attacker.example' }, 403],
      [{ host: own, origin: 'null' }, 403],
      [{ host: own, 'sec-fetch-site': 'cross-site' }, 403],
    ];
    for (const [headers, status] of attacks)
      for (const [method, path] of [
        ['GET', '/call/orders'],
        ['POST', '/rotate'],
        ['GET', '/metrics'],
        ['GET', '/health'],
      ] as const) {
        const answer = await http(method, `${facade.url}${path}`, headers);
        expect({ headers, path, status: answer.status }).toEqual({ headers, path, status });
        expect(JSON.parse(answer.text)).toMatchObject({
          error: status === 421 ? 'misdirected_request' : 'forbidden',
          reason: expect.any(String),
        });
        if (status === 421) expect(answer.headers.connection).toBe('close');
      }
    const metrics = await worker.metrics.render();
    expect(metric(metrics, 'partner_token_requests_total')).toBe(0);
    expect(metric(metrics, 'partner_calls_total')).toBe(0);
    expect(await f.issuedTokens()).toBe(tokensBefore);
    expect({ accepted: f.seenTokens.size, refused: f.refused }).toEqual(apiBefore);
    expect(logs.join('\n')).toContain('refused GET /call/orders: Host "attacker.example');

    // Its own origin, under each loopback name and the configured one, still works.
    for (const host of [
      own,
      `127.0.0.1:${facade.port}`,
      `[::1]:${facade.port}`,
      `Partner.Test:${facade.port}`,
    ])
      expect(
        (await http('GET', `${facade.url}/call/orders`, { host, origin: `http://${host}` })).status,
      ).toBe(200);
    expect(metric(await worker.metrics.render(), 'partner_calls_total')).toBe(4);
  }, 60_000);

  it('no answer from the API: 502 with a reason, counted as failed; the authority refusing: 502 token_unavailable', async () => {
    const { store } = await f.registeredCertificate('facade-down');
    const { facade, logs } = await f.inProcess(store.directory);
    f.apiUp = false;
    try {
      const down = await http('GET', `${facade.url}/call/orders`);
      expect(down.status).toBe(502);
      expect(JSON.parse(down.text)).toMatchObject({
        error: 'upstream_failed',
        reason: expect.stringMatching(/ECONNRESET|socket hang up/),
      });
    } finally {
      f.apiUp = true;
    }
    const metrics = (await http('GET', `${facade.url}/metrics`)).text;
    expect(metric(metrics, 'partner_calls_total', 'outcome="failed"')).toBe(1);
    expect(logs.join('\n')).toMatch(/GET \/orders \(traceId [0-9a-f]{32} spanId [0-9a-f]{16}\): failed/);

    // A certificate the tenant does not know: no token, 502 naming the AADSTS error.
    const stranger = new CertificateStore(join(f.dir.path, 'facade-stranger'));
    stranger.create({ commonName: 'stranger' });
    const { facade: strangerFacade } = await f.inProcess(stranger.directory);
    const noToken = await http('GET', `${strangerFacade.url}/call/orders`);
    expect(noToken.status).toBe(502);
    expect(JSON.parse(noToken.text)).toMatchObject({
      error: 'token_unavailable',
      reason: expect.stringContaining('700027'),
    });
  }, 60_000);

  it('damaged or half-written certificate files are ignored with a log line; a valid new pair is switched to without a restart', async () => {
    const { store, credential } = await f.registeredCertificate('facade-watch');
    const { worker, facade, logs, assertions } = await f.inProcess(store.directory);
    expect((await http('GET', `${facade.url}/call/orders`)).status).toBe(200);
    expect(assertions.at(-1)?.['x5t#S256']).toBe(credential.certificate.thumbprints.sha256Base64Url);

    // Half-written: a truncated certificate.
    const pem = readFileSync(store.paths.certificatePath, 'utf8');
    writeFileSync(store.paths.certificatePath, pem.slice(0, pem.length / 2));
    await until('the ignored-files log line', () => logs.some((l) => l.includes('do not load')));
    expect(worker.credential.certificate.thumbprints.sha256Hex).toBe(
      credential.certificate.thumbprints.sha256Hex,
    );
    expect((await http('GET', `${facade.url}/call/orders`)).status).toBe(200);
    expect(
      metric((await http('GET', `${facade.url}/metrics`)).text, 'partner_certificate_reload_failures_total'),
    ).toBe(1);

    // A complete, registered new pair dropped in by another tool.
    const next = await f.registeredCertificate('facade-watch-next');
    for (const file of ['partner.key.pem', 'partner.crt.pem', 'partner.cer'])
      copyFileSync(join(next.store.directory, file), join(store.directory, file));
    await until(
      'the switch',
      () =>
        worker.credential.certificate.thumbprints.sha256Hex ===
        next.credential.certificate.thumbprints.sha256Hex,
    );
    expect(logs.join('\n')).toContain(
      `switched to the certificate ${next.credential.certificate.thumbprints.sha256Hex}`,
    );
    expect(
      metric((await http('GET', `${facade.url}/metrics`)).text, 'partner_certificate_switches_total'),
    ).toBe(1);
    // The next token request signs with the new key.
    expect((await worker.tokens.getToken({ forceRefresh: true })).source).toBe('network');
    expect(assertions.at(-1)?.['x5t#S256']).toBe(next.credential.certificate.thumbprints.sha256Base64Url);
  }, 60_000);
});
