/**
 * The partner worker on a shifted clock (CERTFLOW_CLOCK_OFFSET), shared with the real Entra ID
 * emulator: its certificate nearly expired warns, a token past its exp decodes as expired, and
 * the assertion it signs is valid on the authority's clock. Nothing waits for real time.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { formatClockOffset, OffsetClock } from '@certflow/clock';
import {
  GraphClient,
  provisionApiAndPartner,
  startEmulator,
  type RunningEmulator,
} from '@certflow/entra-emulator';
import { CertificateStore, type PartnerCredential } from '@certflow/partner-client';
import { tempDir } from '@certflow/testing';
import { runCaptured } from './cli.test-helpers';

const API_URI = 'api://certflow-clock-worker-test';
const DAY = 86_400_000;

describe('partner worker on a shifted clock', () => {
  const dir = tempDir();
  const clock = new OffsetClock();
  let emulator: RunningEmulator;
  let credential: PartnerCredential;
  let env: Record<string, string>;

  beforeAll(async () => {
    emulator = await startEmulator({ stateDir: join(dir.path, 'state'), port: 0, now: () => clock.now() });
    const graph = await GraphClient.connect(emulator);
    try {
      const { partner } = await provisionApiAndPartner(graph, {
        apiDisplayName: 'orders API (clock test)',
        apiIdentifierUri: API_URI,
        roles: ['Orders.Read'],
        partnerDisplayName: 'clock test partner',
        grantRoles: ['Orders.Read'],
      });
      credential = new CertificateStore(join(dir.path, 'partner')).create({ commonName: 'clock-test' });
      await graph.addCertificate(partner.objectId, readFileSync(credential.cerPath), 'clock test');
      env = {
        ENTRA_INSTANCE: emulator.url,
        PARTNER_TENANT_ID: emulator.tenantId,
        PARTNER_CLIENT_ID: partner.appId,
        PARTNER_SCOPE: `${API_URI}/.default`,
        PARTNER_CERT_DIR: credential.directory,
        PARTNER_CA_FILE: emulator.caCertificatePath,
      };
    } finally {
      graph.close();
    }
  }, 120_000);

  beforeEach(() => clock.set(0));

  afterAll(async () => {
    credential?.close();
    await emulator?.close();
    dir.remove();
  });

  it('warns that the certificate expires soon when the clock is ten days before its endDateTime', async () => {
    const quiet = await runCaptured(['token', 'get', '--json'], env, dir.path);
    expect(quiet.code).toBe(0);
    expect(quiet.err).toBe('');

    // Whole seconds, ten days before notAfter: for the worker and the emulator alike.
    const offsetMs =
      Math.floor((credential.certificate.notAfter.getTime() - 10 * DAY - Date.now()) / 1000) * 1000;
    clock.set(offsetMs);
    const shifted = await runCaptured(
      ['token', 'get', '--json'],
      { ...env, CERTFLOW_CLOCK_OFFSET: formatClockOffset(offsetMs) },
      dir.path,
    );
    expect(shifted.err.split('\n')).toEqual([
      `partner-worker: clock: shifted by ${formatClockOffset(offsetMs)} from the real time`,
      expect.stringMatching(
        /^partner-worker: warning: the certificate expires in (9|10) days \(.+\); rotate it soon$/,
      ),
    ]);
    expect(shifted.code).toBe(0);
    const events = shifted.out.split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.map((e) => e['event'])).toEqual(['assertion', 'token']);
    // The assertion it signed is dated by the shifted clock, which the emulator accepted.
    const nbf = (events[0]!['claims'] as { nbf: number }).nbf * 1000;
    expect(Math.abs(nbf - (Date.now() + offsetMs))).toBeLessThan(60_000);
  });

  it("token decode's expired flag follows the clock", async () => {
    const token = await emulator.signAccessToken({ exp: Math.floor(Date.now() / 1000) + 600, aud: API_URI });
    const decode = async (offset?: string) => {
      const r = await runCaptured(
        ['token', 'decode', token, '--json'],
        offset === undefined ? {} : { CERTFLOW_CLOCK_OFFSET: offset },
        dir.path,
      );
      expect(r.code).toBe(0);
      return (JSON.parse(r.out) as { expired: boolean }).expired;
    };
    expect(await decode()).toBe(false);
    expect(await decode('+1h')).toBe(true);
  });

  it('refuses a bad CERTFLOW_CLOCK_OFFSET, naming it', async () => {
    const r = await runCaptured(['token', 'get'], { ...env, CERTFLOW_CLOCK_OFFSET: 'soon' }, dir.path);
    expect(r.code).toBe(1);
    expect(r.err).toContain('CERTFLOW_CLOCK_OFFSET "soon" is not a clock offset');
  });
});
