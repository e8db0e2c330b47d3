/**
 * The controllable clock: `/admin/clock` moves it, everything that judges time follows it
 * (tokens, certificate validity, Graph tokens, signing-key retirement), and every change is in the
 * clock file before the answer; changes written to the file by another process are followed.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSelfSignedCertificate, pemToDer } from '@certflow/certs';
import { readClockFile, writeClockFile } from '@certflow/clock';
import { clockRoutes } from './clock-route';
import { startEmulator } from './emulator';
import { GraphClient } from './graph-client';
import { GraphError } from './graph-errors';
import { EmulatorError } from './errors';
import { readEmulatorInfoIfPresent } from './emulator-info';
import { statePath } from './state-store';
import { mintTestToken } from './test-tokens';
import { startEmulatorFixture } from './testing';
import {
  API_URI,
  assertionForm,
  clientAssertion,
  decodeJwt,
  https,
  postForm,
  removeDir,
  startFixture,
  tempStateDir,
  type Fixture,
} from './emulator.test-helpers';

const H = 3_600_000;
const DAY = 24 * H;
let f: Fixture;
let clockFile: string;
beforeAll(async () => {
  const dir = tempStateDir();
  clockFile = join(dir, 'clock.json');
  f = await startFixture({ tokenLifetimeSeconds: 3600, clockFile, clockOffset: 0 });
  f.close = ((close) => async () => {
    await close();
    removeDir(dir);
  })(f.close);
});
afterAll(async () => {
  await f?.close();
});

/** A fresh admin token: one issued before a move may be expired by the moved clock. */
async function adminToken(): Promise<string> {
  const res = await postForm(f.emulator, {
    grant_type: 'client_credentials',
    client_id: f.emulator.admin.clientId,
    client_secret: f.emulator.admin.clientSecret,
    scope: 'https://graph.microsoft.com/.default',
  });
  expect(res.status, res.text).toBe(200);
  return String(res.json().access_token);
}

async function admin(method: string, path: string, body?: unknown, token?: string) {
  return https(f.emulator, `${f.emulator.url}/admin/${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token ?? (await adminToken())}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
}

async function partnerToken(cert = f.partnerCert) {
  const partner = f.provisioned.partner.appId;
  const now = Math.floor(f.emulator.clock.now().getTime() / 1000);
  return postForm(
    f.emulator,
    assertionForm(
      partner,
      await clientAssertion(f.emulator.tokenEndpoint, partner, cert, { nowSeconds: now }),
    ),
  );
}

describe('/admin/clock', () => {
  it('POST /admin/clock/advance moves it over HTTP; GraphClient.setClock does both, past its own token', async () => {
    f.emulator.clock.set(0);
    const res = await admin('POST', 'clock/advance', { by: '+1h' });
    expect(res.status, res.text).toBe(200);
    expect(res.json()).toMatchObject({ offsetMs: H, offset: '+1h' });
    expect(readClockFile(clockFile)).toBe(H);
    expect((await admin('GET', 'clock/advance')).status).toBe(405);
    // Only whole paths are routes: nothing reaches Object's own properties.
    expect((await admin('GET', 'constructor')).status).toBe(400);
    expect((await admin('POST', 'clock/advance/again', { by: '+1h' })).status).toBe(400);
    expect(readClockFile(clockFile)).toBe(H);

    const graph = await GraphClient.connect(f.emulator);
    try {
      await graph.listApplications();
      // The client's admin token (1 h) is expired on the moved clock: it gets a new one once.
      expect(await graph.setClock({ by: '+2h' })).toMatchObject({ offsetMs: 3 * H, offset: '+3h' });
      expect((await graph.setClock({ offset: '+30m' })).offsetMs).toBe(H / 2);
      expect((await graph.listApplications()).length).toBeGreaterThan(0);
    } finally {
      graph.close();
      f.emulator.clock.set(0);
    }
  });

  it('shows, sets, clears the offset; each change is in the clock file before the answer', async () => {
    const shown = await admin('GET', 'clock');
    expect(shown.status, shown.text).toBe(200);
    expect(shown.json()).toMatchObject({ offsetMs: 0, offset: '0' });
    expect(Math.abs(Date.parse(String(shown.json().now)) - Date.now())).toBeLessThan(5_000);

    const set = await admin('PUT', 'clock', { offset: '+2h' });
    expect(set.status, set.text).toBe(200);
    expect(set.json()).toMatchObject({ offsetMs: 2 * H, offset: '+2h' });
    expect(Date.parse(String(set.json().now)) - Date.now()).toBeGreaterThan(2 * H - 5_000);
    expect(readClockFile(clockFile)).toBe(2 * H);
    expect(f.emulator.clock.offsetMs).toBe(2 * H);

    const byMs = await admin('PUT', 'clock', { offsetMs: -90_000 });
    expect(byMs.json()).toMatchObject({ offsetMs: -90_000, offset: '-1m30s' });
    expect(readClockFile(clockFile)).toBe(-90_000);

    f.emulator.clock.advance(H);
    expect(f.emulator.clock.offsetMs).toBe(H - 90_000);
    expect(readClockFile(clockFile)).toBe(H - 90_000);

    const cleared = await admin('DELETE', 'clock');
    expect(cleared.json()).toMatchObject({ offsetMs: 0, offset: '0' });
    expect(readClockFile(clockFile)).toBe(0);
  });

  it.each([
    [{ offset: 'two hours' }, '"offset" "two hours" is not a clock offset'],
    [{ offset: '+3651d' }, '"offset" "+3651d" is more than 3650 days'],
    [{ offset: 7200 }, '"offset" must be a string'],
    [{ offsetMs: '7200000' }, '"offsetMs" must be an integer'],
    [{ offsetMs: 1.5 }, '"offsetMs" 1.5 is not a whole number of milliseconds'],
    [{ offsetMs: 3651 * DAY }, 'within ±3650 days'],
    [{ offset: '+1h', offsetMs: 3_600_000 }, 'give exactly one of "offset"'],
    [{}, 'give exactly one of "offset"'],
    [{ offset: '+1h', by: '+1h' }, 'unknown field "by"'],
    [['+1h'], 'must be a JSON object'],
    [null, 'must be a JSON object'],
  ])('PUT %j is refused with 400 naming the field, and changes nothing', async (body, message) => {
    f.emulator.clock.set(5_000);
    const res = await admin('PUT', 'clock', body);
    expect(res.status, res.text).toBe(400);
    expect((res.json().error as { message: string }).message).toContain(message);
    expect(f.emulator.clock.offsetMs).toBe(5_000);
    expect(readClockFile(clockFile)).toBe(5_000);
  });

  it('refuses a body that is not JSON, other methods and callers without the admin credential', async () => {
    expect((await admin('PUT', 'clock', '{"offset":')).status).toBe(400);
    expect((await admin('POST', 'clock', { offset: '+1h' })).status).toBe(405);
    const anonymous = await https(f.emulator, `${f.emulator.url}/admin/clock`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '{"offset":"+1h"}',
    });
    expect(anonymous.status).toBe(401);
    expect(f.emulator.clock.offsetMs).toBe(5_000);
    f.emulator.clock.set(0);
  });

  it('follows a change written to the clock file by another process within ~100 ms', async () => {
    writeClockFile(clockFile, 3 * H);
    await expect.poll(() => f.emulator.clock.offsetMs, { timeout: 2_000, interval: 20 }).toBe(3 * H);
    writeFileSync(clockFile, 'damaged');
    await new Promise((r) => setTimeout(r, 400));
    expect(f.emulator.clock.offsetMs).toBe(3 * H); // a damaged file keeps the last good offset
    f.emulator.clock.set(0);
    expect(readClockFile(clockFile)).toBe(0);
  });

  it.each([
    ['a FIFO', 'is not a regular file', () => execFileSync('mkfifo', [clockFile])],
    ['a link to /dev/zero', 'is a symbolic link, not a file', () => symlinkSync('/dev/zero', clockFile)],
    ['an oversized file', 'is larger than 4096 bytes', () => writeFileSync(clockFile, ' '.repeat(5000))],
  ])(
    'a clock file replaced by %s is reported; the clock keeps its offset and the server answers',
    async (_, problem, make) => {
      f.emulator.clock.set(H);
      const logged = vi.spyOn(console, 'error').mockImplementation(() => undefined);
      try {
        rmSync(clockFile);
        make();
        await expect
          .poll(() => logged.mock.calls.map((call) => String(call[0])), { timeout: 2_000, interval: 20 })
          .toContainEqual(`entra-emulator: clockFile ${clockFile}: ${problem}; the clock stays as it was`);
        const shown = await admin('GET', 'clock');
        expect(shown.status, shown.text).toBe(200);
        expect(shown.json()).toMatchObject({ offsetMs: H });
      } finally {
        logged.mockRestore();
      }
      f.emulator.clock.set(0); // replaces whatever is at the path with a clock file again
      expect(readClockFile(clockFile)).toBe(0);
    },
  );
});

describe('POST /admin/clock/advance', () => {
  // Its handler directly: admin-api.ts routes one path segment after /admin (see the report).
  const advance = (body: unknown) =>
    clockRoutes(f.emulator.clock)['clock/advance']!('POST', async () => body);

  it('moves the clock by "by", backwards too, writing the clock file', async () => {
    f.emulator.clock.set(0);
    expect((await advance({ by: '+1h' })).body).toMatchObject({ offsetMs: H, offset: '+1h' });
    expect((await advance({ by: '-90m' })).body).toMatchObject({ offsetMs: -H / 2, offset: '-30m' });
    expect(readClockFile(clockFile)).toBe(-H / 2);
    f.emulator.clock.set(0);
  });

  it.each([
    [{ by: 3600 }, '"by" must be a string'],
    [{ by: 'later' }, '"by" "later" is not a clock offset'],
    [{ by: '+1h', offset: '+1h' }, 'unknown field "offset"'],
    [{ by: '+3650d' }, 'the new clock offset'],
    ['+1h', 'must be a JSON object'],
  ])('%j is refused with 400 naming the field, and changes nothing', async (body, message) => {
    f.emulator.clock.set(1_000);
    const err = await advance(body).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GraphError);
    expect((err as GraphError).status).toBe(400);
    expect((err as GraphError).message).toContain(message);
    expect(f.emulator.clock.offsetMs).toBe(1_000);
    expect(readClockFile(clockFile)).toBe(1_000);
    f.emulator.clock.set(0);
  });

  it('answers 405 to other methods', async () => {
    await expect(
      clockRoutes(f.emulator.clock)['clock/advance']!('GET', async () => ({})),
    ).rejects.toMatchObject({
      status: 405,
    });
  });
});

describe('what follows the clock', () => {
  it('token iat/nbf/exp, and the Graph tokens the emulator checks', async () => {
    const graphToken = await adminToken();
    f.emulator.clock.set(2 * H);
    const res = await partnerToken();
    expect(res.status, res.text).toBe(200);
    const { payload } = decodeJwt(String(res.json().access_token));
    expect(Number(payload.iat) * 1000 - Date.now()).toBeGreaterThan(2 * H - 10_000);
    expect(Number(payload.exp) - Number(payload.iat)).toBe(3600);
    // The admin token from before the move expired an hour ago by this clock.
    const stale = await admin('GET', 'clock', undefined, graphToken);
    expect(stale.status).toBe(401);
    // Moved back, a token issued at the later time is not valid yet (nbf beyond the skew).
    const later = await adminToken();
    expect((await admin('GET', 'clock', undefined, later)).status).toBe(200);
    f.emulator.clock.set(0);
    expect((await admin('GET', 'clock', undefined, later)).status).toBe(401);
  });

  it('a certificate past its endDateTime is refused with AADSTS700027 (key expired), and valid again when the clock goes back', async () => {
    const shortLived = createSelfSignedCertificate({ commonName: 'short-lived', days: 2 });
    const app = f.provisioned.partner.objectId;
    await f.graph.addCertificate(app, pemToDer(shortLived.certificatePem), 'short-lived');
    expect((await partnerToken(shortLived)).status).toBe(200);

    f.emulator.clock.set(3 * DAY);
    const refused = await partnerToken(shortLived);
    expect(refused.status).toBe(401);
    expect(refused.json().error_codes).toEqual([700027]);
    expect(String(refused.json().error_description)).toContain('The key used is expired');

    f.emulator.clock.set(0);
    expect((await partnerToken(shortLived)).status).toBe(200);
  });

  it('secrets: one added at a later time is refused (AADSTS7000222) once the clock goes back before it', async () => {
    f.emulator.clock.set(30 * 60_000);
    const secret = await f.graph.addPassword(f.provisioned.partner.objectId, 'added later');
    const form = {
      grant_type: 'client_credentials',
      client_id: f.provisioned.partner.appId,
      client_secret: String(secret.secretText),
      scope: `${API_URI}/.default`,
    };
    expect((await postForm(f.emulator, form)).status).toBe(200);
    f.emulator.clock.set(0);
    const early = await postForm(f.emulator, form);
    expect(early.status).toBe(401);
    expect(early.json().error_codes).toEqual([7000222]);
  });

  it('signing keys: a key rotated out is retired by the moved clock, not by waiting', async () => {
    const jwks = async () =>
      ((await https(f.emulator, f.emulator.jwksUri)).json().keys as { kid: string }[]).map((k) => k.kid);
    const old = String(decodeJwt(String((await partnerToken()).json().access_token)).header.kid);
    await f.emulator.rotateSigningKey();
    expect(await jwks()).toContain(old);
    // Lifetime 3600 s + 60 s skew: retired after that, by this clock.
    f.emulator.clock.set(H + 2 * 60_000);
    expect(await jwks()).not.toContain(old);
    f.emulator.clock.set(0);
    expect(await jwks()).toContain(old);
  });
});

describe('start-up', () => {
  it('refuses a bad clockOffset or clockFile naming the option, and a damaged clock file naming it', async () => {
    const stateDir = tempStateDir();
    try {
      await expect(startEmulator({ stateDir, clockOffset: 1.5 })).rejects.toThrow(
        /clockOffset must be whole/,
      );
      await expect(startEmulator({ stateDir, clockOffset: 3651 * DAY })).rejects.toThrow(/clockOffset/);
      await expect(startEmulator({ stateDir, clockFile: '' })).rejects.toThrow(/clockFile must be/);
      const damaged = join(stateDir, 'clock.json');
      writeFileSync(damaged, '{"offsetMs":"soon"}');
      const err = await startEmulator({ stateDir, clockFile: damaged }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EmulatorError);
      expect((err as EmulatorError).message).toMatch(/clockFile .*clock\.json: "offsetMs" is not a number/);
      expect(readFileSync(damaged, 'utf8')).toBe('{"offsetMs":"soon"}');
    } finally {
      removeDir(stateDir);
    }
  });

  it("starts at the clock file's offset when only clockFile is given", async () => {
    const stateDir = tempStateDir();
    const file = join(stateDir, 'clock.json');
    writeClockFile(file, -H);
    const emulator = await startEmulator({ stateDir, clockFile: file });
    try {
      expect(emulator.clock.offsetMs).toBe(-H);
      expect(Math.abs(emulator.clock.now().getTime() - (Date.now() - H))).toBeLessThan(1_000);
    } finally {
      await emulator.close();
      removeDir(stateDir);
    }
  });
});

describe("the admin is never locked out by the clock's moves", () => {
  const adminTokenOf = (
    emulator: { admin: { clientId: string; clientSecret: string } } & Parameters<typeof postForm>[0],
  ) =>
    postForm(emulator, {
      grant_type: 'client_credentials',
      client_id: emulator.admin.clientId,
      client_secret: emulator.admin.clientSecret,
      scope: 'https://graph.microsoft.com/.default',
    });

  it('a fixture started at +2h, its clock set back to 0: Graph, mintTestToken and a new admin token still work', async () => {
    const fixture = await startEmulatorFixture({ clockOffset: '+2h' });
    try {
      fixture.emulator.clock.set(0);
      const res = await adminTokenOf(fixture.emulator);
      expect(res.status, res.text).toBe(200);
      // The fixture's GraphClient kept a token issued at +2h: refused now, it gets a new one.
      expect((await fixture.graph.listApplications()).map((a) => a.appId)).toContain(fixture.api.appId);
      const minted = await mintTestToken(fixture.emulator, { resource: fixture.api.identifierUri });
      expect([fixture.api.appId, fixture.api.identifierUri]).toContain(decodeJwt(minted).payload.aud);
      fixture.emulator.clock.set(-3650 * DAY);
      expect((await adminTokenOf(fixture.emulator)).status).toBe(200);
      fixture.emulator.clock.set(3650 * DAY);
      expect((await adminTokenOf(fixture.emulator)).status).toBe(200);
    } finally {
      await fixture.close();
    }
  }, 60_000);

  it('an admin secret an earlier version dated from its creation is replaced at the next start, and the new one survives any move', async () => {
    const stateDir = tempStateDir();
    try {
      const first = await startEmulator({ stateDir });
      const oldSecret = first.admin.clientSecret;
      await first.close();
      // As earlier versions wrote it: valid from the tenant's creation for ten years.
      const state = JSON.parse(readFileSync(statePath(stateDir), 'utf8'));
      const admin = state.applications.find((a: { appId: string }) => a.appId === state.adminAppId);
      admin.passwordCredentials[0].startDateTime = new Date().toISOString();
      admin.passwordCredentials[0].endDateTime = new Date(Date.now() + 3650 * DAY).toISOString();
      writeFileSync(statePath(stateDir), JSON.stringify(state));

      const again = await startEmulator({ stateDir });
      const newSecret = again.admin.clientSecret;
      try {
        expect(again.admin.clientSecret).not.toBe(oldSecret);
        expect(readEmulatorInfoIfPresent(stateDir)!.admin.clientSecret).toBe(again.admin.clientSecret);
        again.clock.set(-DAY);
        const res = await adminTokenOf(again);
        expect(res.status, res.text).toBe(200);
      } finally {
        await again.close();
      }
      // Reused from then on.
      const third = await startEmulator({ stateDir, clockOffset: 2 * H });
      try {
        expect(third.admin.clientSecret).toBe(newSecret);
      } finally {
        await third.close();
      }
    } finally {
      removeDir(stateDir);
    }
  }, 60_000);
});
