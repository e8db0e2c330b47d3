// #region readme:vitest
import { afterAll, beforeAll } from 'vitest';
// eslint-disable-next-line @nx/enforce-module-boundaries -- imported as a user does, by the package's name
import { startEmulatorFixture, type EmulatorFixture } from '@certflow/entra-emulator/testing';

let entra: EmulatorFixture;
beforeAll(async () => (entra = await startEmulatorFixture()));
afterAll(() => entra.close());
// #endregion

// #region readme:msal
import { ConfidentialClientApplication } from '@azure/msal-node';
import { decodeJwt } from 'jose';
import { expect, it } from 'vitest';

it('the partner gets a token for the API with its certificate, through MSAL', async () => {
  const msal = new ConfidentialClientApplication({
    auth: {
      clientId: entra.partner.appId,
      authority: entra.authority,
      knownAuthorities: [new URL(entra.url).host],
      clientCertificate: {
        thumbprintSha256: entra.partner.thumbprintSha256,
        privateKey: entra.partner.privateKeyPem,
      },
    },
    system: { networkClient: entra.networkClient },
  });
  const result = await msal.acquireTokenByClientCredential({ scopes: [entra.api.scope] });
  expect(decodeJwt(result!.accessToken)).toMatchObject({
    aud: entra.api.appId,
    azp: entra.partner.appId,
    roles: ['Orders.Read'],
  });
});
// #endregion

/* What the README does not show: files, options, clean-up, and that the README is this file. */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect } from 'node:net';
import { parseCertificate } from '@certflow/certs';
import { assertionForm, clientAssertion, postForm } from '../emulator.test-helpers';
import { startEmulatorFixture as fromSource } from './index';
import type { EmulatorFixtureOptions, FixturePartner } from './emulator-fixture';

const README = resolve(__dirname, '../../README.md');
const PLAYWRIGHT_EXAMPLE = resolve(__dirname, '../../../../e2e/tests/emulator-fixture.e2e.ts');

/** The lines between `// #region readme:<name>` and `// #endregion` of a file, less lint directives. */
function region(file: string, name: string): string {
  const text = readFileSync(file, 'utf8');
  const start = text.indexOf(`// #region readme:${name}\n`);
  const end = text.indexOf('// #endregion', start);
  if (start < 0 || end < 0) throw new Error(`${file} has no region readme:${name}`);
  return text
    .slice(text.indexOf('\n', start) + 1, end)
    .replace(/^ *\/\/ eslint-disable-next-line .*\n/gm, '');
}

/** Why a fixture did not start (one that did is closed). */
function whyNot(options: EmulatorFixtureOptions): Promise<Error> {
  return startEmulatorFixture(options).then(
    async (f) => {
      await f.close();
      throw new Error('started');
    },
    (err: Error) => err,
  );
}

/** Runs `body` with os.tmpdir() in an empty directory of its own, and returns what `body` left there. */
async function leftInTmpdir(body: () => Promise<unknown>): Promise<string[]> {
  const own = mkdtempSync(join(tmpdir(), 'fixture-tmpdir-'));
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = own;
  try {
    await body();
    return readdirSync(own);
  } finally {
    process.env.TMPDIR = saved;
    rmSync(own, { recursive: true, force: true });
  }
}

it('the README shows this file and the Playwright example verbatim', () => {
  const readme = readFileSync(README, 'utf8');
  const section = readme.slice(readme.indexOf('\n## In your own tests\n'));
  for (const [file, name] of [
    [__filename, 'vitest'],
    [PLAYWRIGHT_EXAMPLE, 'playwright'],
    [__filename, 'msal'],
  ] as const)
    expect(section).toContain('```ts\n' + region(file, name) + '```\n');
});

it('is the source, as Vitest resolves @certflow/entra-emulator/testing by its @certflow/source condition', () => {
  expect(startEmulatorFixture).toBe(fromSource);
});

it('keeps its files in a directory only this user can enter, the key 0600, matching the registration', async () => {
  expect(statSync(entra.directory).mode & 0o777).toBe(0o700);
  expect(statSync(entra.partner.privateKeyPath).mode & 0o777).toBe(0o600);
  expect(entra.caPem).toBe(readFileSync(entra.caCertificatePath, 'utf8'));
  expect(readFileSync(entra.partner.certificatePath, 'utf8')).toBe(entra.partner.certificatePem);
  const app = await entra.graph.getApplication(entra.partner.objectId);
  expect(app.keyCredentials.map((k) => [k.keyId, k.customKeyIdentifier])).toEqual([
    [entra.partner.keyId, entra.partner.thumbprint],
  ]);
  expect(await claims(entra, entra.partner)).toMatchObject({ roles: ['Orders.Read'] });
});

it('takes roles, grants, more partners, a token lifetime and a clock offset; close() removes everything, once', async () => {
  const f = await startEmulatorFixture({
    apiIdentifierUri: 'api://fixture-test',
    roles: ['Reports.Read', 'Reports.Write'],
    partner: { name: 'reader', grants: ['Reports.Read'] },
    partners: [{ name: 'writer', grants: ['Reports.Read', 'Reports.Write'] }, { name: 'nobody' }],
    tokenLifetimeSeconds: 300,
    clockOffset: '+2h',
  });
  try {
    expect(f.partners.map((p) => p.name)).toEqual(['reader', 'writer', 'nobody']);
    expect(f.partner).toBe(f.partners[0]);
    expect(f.api.scope).toBe('api://fixture-test/.default');
    // Client assertions signed at the emulator's time: MSAL for Node signs with the real clock.
    const tokenClaims = async (p: FixturePartner) => {
      const nowSeconds = Math.floor(f.emulator.clock.now().getTime() / 1000);
      const assertion = await clientAssertion(f.emulator.tokenEndpoint, p.appId, p, { nowSeconds });
      const answer = await postForm(f.emulator, assertionForm(p.appId, assertion, f.api.scope));
      return decodeJwt<{ roles?: string[] }>(String(answer.json().access_token));
    };
    const issued = await Promise.all(
      f.partners.map((p) => tokenClaims(p).then((c) => ({ roles: c.roles, lifetime: c.exp! - c.iat! }))),
    );
    expect(issued).toEqual([
      { roles: ['Reports.Read'], lifetime: 300 },
      { roles: ['Reports.Read', 'Reports.Write'], lifetime: 300 },
      { roles: undefined, lifetime: 300 },
    ]);
    expect(f.emulator.clock.offsetMs).toBe(2 * 3600_000);
    const { iat } = await tokenClaims(f.partner);
    expect(Math.abs(iat! - Date.now() / 1000 - 7200)).toBeLessThan(60);
    const { notBefore } = parseCertificate(f.partner.certificatePem);
    expect(Math.abs(notBefore.getTime() - Date.now())).toBeLessThan(120_000); // valid at both times
    const byMsal = await claims(f, f.partner).then(
      () => 'issued',
      (err: Error) => err.message,
    );
    expect(byMsal).toContain('AADSTS700024');
  } finally {
    await Promise.all([f.close(), f.close()]);
  }
  expect(existsSync(f.directory)).toBe(false);
  await f.close();
  const refused = await new Promise((done) =>
    connect(Number(new URL(f.url).port), '127.0.0.1')
      .on('connect', () => done('connected'))
      .on('error', (err: NodeJS.ErrnoException) => done(err.code)),
  );
  expect(refused).toBe('ECONNREFUSED');
});

it('await using closes it at the end of the block', async () => {
  let directory: string;
  {
    await using f = await startEmulatorFixture();
    directory = f.directory;
    expect(existsSync(directory)).toBe(true);
  }
  expect(existsSync(directory)).toBe(false);
});

it("works in a directory of the caller's, and leaves it there", async () => {
  const directory = join(mkdtempSync(join(tmpdir(), 'fixture-own-')), 'mine');
  try {
    const f = await startEmulatorFixture({ directory });
    expect([f.directory, f.stateDir]).toEqual([directory, join(directory, 'state')]);
    expect(statSync(directory).mode & 0o777).toBe(0o700);
    await f.close();
    expect(readdirSync(directory).sort()).toEqual([
      'contoso-partner.crt.pem',
      'contoso-partner.key.pem',
      'state',
    ]);
  } finally {
    rmSync(join(directory, '..'), { recursive: true, force: true });
  }
});

it('refuses bad options before it makes anything, and undoes a start that fails half-way', async () => {
  const problems: string[] = [];
  const left = await leftInTmpdir(async () => {
    for (const options of [
      { partner: { grants: ['Orders.Delete'] } },
      { partners: [{ name: 'contoso-partner' }] },
      { clockOffset: 'two hours' },
      { clockOffset: 1.5 },
      { apiIdentifierUri: 'not a uri' }, // refused by Graph, after the emulator started
    ])
      problems.push((await whyNot(options)).message);
  });
  expect(problems).toEqual([
    'startEmulatorFixture: partner contoso-partner is granted roles the API lacks: Orders.Delete',
    'startEmulatorFixture: partner names must differ: contoso-partner, contoso-partner',
    expect.stringContaining('two hours'),
    expect.stringContaining('clockOffset must be whole milliseconds'),
    expect.stringContaining("'not a uri' is not an absolute URI"),
  ]);
  expect(left).toEqual([]);
});

/** The claims of a token MSAL gets for `partner` (SHA-1 thumbprint, the key read from its file). */
function claims(f: EmulatorFixture, partner: FixturePartner) {
  const msal = new ConfidentialClientApplication({
    auth: {
      clientId: partner.appId,
      authority: f.authority,
      knownAuthorities: [new URL(f.url).host],
      clientCertificate: {
        thumbprint: partner.thumbprint,
        privateKey: readFileSync(partner.privateKeyPath, 'utf8'),
      },
    },
    system: { networkClient: f.networkClient },
  });
  return msal
    .acquireTokenByClientCredential({ scopes: [f.api.scope] })
    .then((r) => decodeJwt<{ roles?: string[] }>(r!.accessToken));
}
