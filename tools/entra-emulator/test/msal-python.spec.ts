/**
 * Microsoft's MSAL for Python (Debian's python3-msal, run by /usr/bin/python3) against the
 * emulator, unchanged but for `instance_discovery=False` (what a user sets for an authority that
 * is not a Microsoft host) and trusting the development CA through a requests session.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { createSelfSignedCertificate, parseCertificate, type CertificateAndKey } from '@certflow/certs';
import {
  API_URI,
  decodeJwt,
  https,
  runJsonChild,
  startFixture,
  type Fixture,
} from '../src/emulator.test-helpers';

const PYTHON = '/usr/bin/python3';
const SCRIPT = join(__dirname, 'msal_python_client.py');

let f: Fixture;
beforeAll(async () => {
  const probe = spawnSync(PYTHON, ['-c', 'import msal'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    throw new Error(
      `MSAL for Python is missing: '${PYTHON} -c "import msal"' failed (${(probe.stderr || probe.error?.message || '').trim()}). ` +
        'Install it with: apt-get install python3-msal',
    );
  }
  f = await startFixture();
});
afterAll(async () => {
  await f?.close();
});

interface PythonRun {
  msalVersion: string;
  result: Record<string, unknown>;
  requests: string[];
}

/** Runs the script asynchronously: the emulator answers from this same process, so the event loop must stay free. */
async function runMsalPython(
  cert: CertificateAndKey,
  options: { authority?: string; x5c?: boolean } = {},
): Promise<PythonRun> {
  const input = {
    authority: options.authority ?? f.emulator.authority,
    clientId: f.provisioned.partner.appId,
    scope: `${API_URI}/.default`,
    privateKeyPem: cert.privateKeyPem,
    thumbprintSha1Hex: parseCertificate(cert.certificatePem).thumbprints.sha1Hex,
    ...(options.x5c ? { publicCertificatePem: cert.certificatePem } : {}),
    caFile: f.emulator.caCertificatePath,
  };
  // requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's `verify`, so the CA goes there too.
  const env = {
    ...process.env,
    REQUESTS_CA_BUNDLE: f.emulator.caCertificatePath,
    CURL_CA_BUNDLE: f.emulator.caCertificatePath,
  };
  return runJsonChild<PythonRun>(PYTHON, [SCRIPT], input, env);
}

async function verifyWithJwks(token: string) {
  const keys = (await https(f.emulator, f.emulator.jwksUri)).json() as unknown as Parameters<
    typeof createLocalJWKSet
  >[0];
  return jwtVerify(token, createLocalJWKSet(keys), {
    issuer: f.emulator.issuer,
    audience: f.provisioned.api.appId,
    algorithms: ['RS256'],
  });
}

describe('MSAL for Python (python3-msal) against the emulator', () => {
  it('gets a token with a SHA-1 thumbprint (RS256 + x5t) that verifies against the JWKS with the right claims', async () => {
    const run = await runMsalPython(f.partnerCert);
    expect(run.msalVersion).toMatch(/^1\./);
    expect(run.result.error, JSON.stringify(run.result)).toBeUndefined();
    expect(run.result.token_type).toBe('Bearer');
    expect(run.result.expires_in).toBeGreaterThanOrEqual(3600);
    const { payload, protectedHeader } = await verifyWithJwks(run.result.access_token as string);
    expect(protectedHeader.kid).toBeTruthy();
    expect(payload).toMatchObject({
      tid: f.emulator.tenantId,
      azp: f.provisioned.partner.appId,
      azpacr: '2',
      idtyp: 'app',
      oid: f.provisioned.partner.servicePrincipalId,
      sub: f.provisioned.partner.servicePrincipalId,
      roles: ['Orders.Read'],
      ver: '2.0',
    });
    // MSAL made only the calls we expect: the tenant's openid-configuration, then token requests;
    // nothing towards login.microsoftonline.com (instance discovery is off).
    expect(run.requests[0]).toBe(`GET ${f.emulator.openIdConfigurationUrl} 200`);
    expect(
      run.requests.slice(1).every((r) => r === `POST ${f.emulator.tokenEndpoint} 200`),
      run.requests.join('\n'),
    ).toBe(true);
  });

  it('sends x5c with public_certificate, and the emulator still matches the registered certificate', async () => {
    const run = await runMsalPython(f.partnerCert, { x5c: true });
    expect(run.result.error, JSON.stringify(run.result)).toBeUndefined();
    const { payload } = await verifyWithJwks(run.result.access_token as string);
    expect(payload.azp).toBe(f.provisioned.partner.appId);
  });

  it('works with the tenant addressed by its domain', async () => {
    const run = await runMsalPython(f.partnerCert, {
      authority: `${f.emulator.url}/${f.emulator.tenantDomain}`,
    });
    expect(run.result.error, JSON.stringify(run.result)).toBeUndefined();
    expect(decodeJwt(run.result.access_token as string).payload.tid).toBe(f.emulator.tenantId);
  });

  it('gets AADSTS700027 in MSAL Python error dict for a certificate that is not registered', async () => {
    const stranger = createSelfSignedCertificate({ commonName: 'not-registered' });
    const run = await runMsalPython(stranger);
    expect(run.result.access_token).toBeUndefined();
    expect(run.result.error).toBe('invalid_client');
    expect(run.result.error_codes).toEqual([700027]);
    expect(run.result.error_description).toMatch(/^AADSTS700027:/);
    expect(run.result.error_description).toContain(
      parseCertificate(stranger.certificatePem).thumbprints.sha1Hex,
    );
  });
});
