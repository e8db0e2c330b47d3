/**
 * `run` as the built CLI against the real Entra ID emulator and an API that verifies every token:
 * JSON-line events, graceful stop, and the certificate's expiry checks.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CertificateStore } from '@certflow/partner-client';
import { http, metric, until, startCli, useFacadeFixture } from './facade.test-helpers';

describe('run (built CLI) against the emulator and a verifying API', () => {
  const f = useFacadeFixture();

  it('run (built CLI): calls on an interval with JSON-line events; SIGTERM stops it gracefully', async () => {
    const { store } = await f.registeredCertificate('facade-run');
    const counted = startCli(
      ['run', '--path', '/orders', '--interval-ms', '20', '--times', '3'],
      f.env(store.directory),
      f.dir.path,
    );
    expect(await counted.exited).toBe(0);
    const events = counted.stdout.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.map((e) => e.event)).toEqual(['started', 'response', 'response', 'response', 'stopped']);
    expect(events[1]).toMatchObject({ n: 1, status: 200 });
    expect(events[4]).toEqual({ event: 'stopped', calls: 3, failed: 0 });

    const endless = startCli(
      ['run', '--path', '/orders', '--interval-ms', '50', '--metrics-port', '0'],
      f.env(store.directory),
      f.dir.path,
    );
    f.closers.push(() => void endless.child.kill('SIGKILL'));
    await until('two responses', () => endless.stdout.filter((l) => l.includes('"response"')).length >= 2);
    const metricsUrl = endless.stdout
      .map((l) => JSON.parse(l) as { event: string; url?: string })
      .find((e) => e.event === 'metrics')!.url!;
    expect(
      metric((await http('GET', `${metricsUrl}/metrics`)).text, 'partner_calls_total', 'outcome="ok"'),
    ).toBeGreaterThanOrEqual(2);
    expect((await http('GET', `${metricsUrl}/call/orders`)).status).toBe(404); // run serves no facade
    const port = new URL(metricsUrl).port;
    const rebound = await http('GET', `${metricsUrl}/metrics`, { host: `attacker.example:${port}` });
    expect(rebound).toMatchObject({ status: 421, headers: { connection: 'close' } });
    expect(rebound.text).not.toContain('partner_calls_total');
    const crossSite = await http('GET', `${metricsUrl}/health`, { origin: 'https://attacker.example' });
    expect(crossSite.status).toBe(403);
    expect(crossSite.text).not.toContain('certificate');
    endless.child.kill('SIGTERM');
    expect(await endless.exited).toBe(0);
    const last = JSON.parse(endless.stdout.at(-1)!) as Record<string, unknown>;
    expect(last).toMatchObject({ event: 'stopped', failed: 0 });
  }, 60_000);

  it('run: refuses an expired certificate before any token request; warns (event, log, metric) when it expires soon', async () => {
    const expired = new CertificateStore(join(f.dir.path, 'facade-expired'));
    expired.create({ commonName: 'expired', days: 1, now: new Date(Date.now() - 3 * 86_400_000) });
    const refusedRun = startCli(
      ['run', '--path', '/orders', '--times', '1'],
      f.env(expired.directory),
      f.dir.path,
    );
    expect(await refusedRun.exited).toBe(1);
    expect(refusedRun.stdout).toEqual([]);
    expect(refusedRun.stderr.join('\n')).toMatch(/expired/);

    const { store } = await f.registeredCertificate('facade-expiring', { days: 10 });
    const warned = startCli(
      ['run', '--path', '/orders', '--times', '1', '--metrics-port', '0'],
      f.env(store.directory),
      f.dir.path,
    );
    expect(await warned.exited).toBe(0);
    const events = warned.stdout.map((l) => JSON.parse(l) as Record<string, unknown>);
    const warning = events.find((e) => e.event === 'warning');
    expect(warning).toMatchObject({ reason: 'certificate-expiring', daysUntilExpiry: expect.any(Number) });
    expect(warning!.daysUntilExpiry).toBeLessThanOrEqual(10);
    expect(warned.stderr.join('\n')).toMatch(/warning: the certificate expires in \d+ days/);
    const { worker } = await f.inProcess(store.directory);
    expect(metric(await worker.metrics.render(), 'partner_certificate_expiring')).toBe(1);

    const quiet = startCli(
      ['run', '--path', '/orders', '--times', '1'],
      f.env(store.directory, { PARTNER_CERT_EXPIRY_WARNING_DAYS: '5' }),
      f.dir.path,
    );
    expect(await quiet.exited).toBe(0);
    expect(quiet.stdout.join('\n')).not.toContain('"warning"');

    const bad = startCli(
      ['run', '--path', '/orders'],
      f.env(store.directory, { PARTNER_CERT_EXPIRY_WARNING_DAYS: 'soon' }),
      f.dir.path,
    );
    expect(await bad.exited).toBe(1);
    expect(bad.stderr.join('\n')).toMatch(/PARTNER_CERT_EXPIRY_WARNING_DAYS: must be a whole number/);
  }, 60_000);
});
