import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority } from '@certflow/certs';
import { validateEntraAuthOptions } from '@certflow/nest-entra-auth';
import { ApiConfigInput, entraAuthOptions, loadApiConfig, validateApiConfig } from './api-config';
import { ConfigError } from './config-error';

/** A real CA certificate, made now: ENTRA_CA_FILE must hold certificates that parse. */
const TEST_CA = createCertificateAuthority({ commonName: 'api-config test CA' });
const TEST_CA_PEM = TEST_CA.certificatePem;
/** A PEM file that is not a certificate: the CA's own private key, made now. */
const TEST_PRIVATE_KEY_PEM = TEST_CA.privateKeyPem;

const TENANT = 'A1B2C3D4-0000-4000-8000-0123456789AB';
const REQUIRED = { ENTRA_TENANT_ID: TENANT, API_AUDIENCES: 'api-app-id' };
const CLIENT_A = '0b7c6d5e-4f3a-4b2c-9d1e-2f3a4b5c6d7e';
const CLIENT_B = '1c8d7e6f-5a4b-4c3d-8e2f-3a4b5c6d7e8f';
const dir = mkdtempSync(join(tmpdir(), 'certflow-api-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadApiConfig', () => {
  it('applies the documented defaults', () => {
    const { clock, ...config } = loadApiConfig(REQUIRED);
    expect(clock.offsetMs).toBe(0);
    expect(clock.file).toBeUndefined();
    expect(config).toEqual({
      host: '127.0.0.1',
      port: 3000,
      entraInstance: 'https://login.microsoftonline.com',
      tenantIds: [TENANT.toLowerCase()],
      audiences: ['api-app-id'],
      allowedClientIds: [],
      requireCertificateClients: false,
      acceptedTokenVersions: ['1.0', '2.0'],
      tokenCacheSize: 10_000,
      allowedHosts: [],
    });
  });

  it('reads every variable, splitting and trimming the audience list', () => {
    const ca = join(dir, 'ca.crt.pem');
    writeFileSync(ca, TEST_CA_PEM);
    const { clock, ...config } = loadApiConfig({
      HOST: '0.0.0.0',
      PORT: '0',
      ENTRA_INSTANCE: 'https://localhost:8443/',
      ENTRA_TENANT_ID: TENANT,
      API_AUDIENCES: ' 6e1f9a0c-3b2d-4c5e-8f70-91a2b3c4d5e6 , api://certflow-orders ',
      ENTRA_CA_FILE: ca,
      API_ALLOWED_CLIENT_IDS: ` ${CLIENT_A.toUpperCase()} ,${CLIENT_B}`,
      API_REQUIRE_CERTIFICATE_CLIENTS: 'true',
      API_ACCEPTED_TOKEN_VERSIONS: '2.0',
      API_TOKEN_CACHE_SIZE: '0',
      API_ALLOWED_HOSTS: ' Orders.Example , 10.0.0.5',
      CERTFLOW_CLOCK_OFFSET: '-90s',
    });
    expect(clock.offsetMs).toBe(-90_000);
    expect(config).toEqual({
      host: '0.0.0.0',
      port: 0,
      entraInstance: 'https://localhost:8443',
      tenantIds: [TENANT.toLowerCase()],
      audiences: ['6e1f9a0c-3b2d-4c5e-8f70-91a2b3c4d5e6', 'api://certflow-orders'],
      caFile: ca,
      allowedClientIds: [CLIENT_A, CLIENT_B],
      requireCertificateClients: true,
      acceptedTokenVersions: ['2.0'],
      tokenCacheSize: 0,
      allowedHosts: ['orders.example', '10.0.0.5'],
    });
  });

  it('accepts several tenants, comma-separated', () => {
    const other = '0f0e0d0c-0000-4000-8000-000000000001';
    expect(loadApiConfig({ ...REQUIRED, ENTRA_TENANT_ID: `${TENANT}, ${other}` }).tenantIds).toEqual([
      TENANT.toLowerCase(),
      other,
    ]);
  });

  it.each([
    ['false', false],
    ['0', false],
    ['TRUE', true],
    ['1', true],
  ])('reads API_REQUIRE_CERTIFICATE_CLIENTS=%s as %s', (value, expected) => {
    expect(
      loadApiConfig({ ...REQUIRED, API_REQUIRE_CERTIFICATE_CLIENTS: value }).requireCertificateClients,
    ).toBe(expected);
  });

  it.each([
    [{ API_AUDIENCES: 'a' }, 'ENTRA_TENANT_ID', /is required/],
    [{ ...REQUIRED, ENTRA_TENANT_ID: '   ' }, 'ENTRA_TENANT_ID', /is required/],
    [{ ...REQUIRED, ENTRA_TENANT_ID: 'contoso.onmicrosoft.com' }, 'ENTRA_TENANT_ID', /GUID.*contoso/],
    [{ ENTRA_TENANT_ID: TENANT }, 'API_AUDIENCES', /is required/],
    [{ ...REQUIRED, API_AUDIENCES: 'a,,b' }, 'API_AUDIENCES', /non-empty/],
    [{ ...REQUIRED, PORT: 'http' }, 'PORT', /integer.*"http"/],
    [{ ...REQUIRED, PORT: '-1' }, 'PORT', /integer/],
    [{ ...REQUIRED, PORT: '3000.5' }, 'PORT', /integer/],
    [{ ...REQUIRED, PORT: '65536' }, 'PORT', /0 to 65535/],
    [{ ...REQUIRED, HOST: 'local host' }, 'HOST', /host name/],
    [{ ...REQUIRED, ENTRA_INSTANCE: 'login.microsoftonline.com' }, 'ENTRA_INSTANCE', /https:\/\/ URL/],
    [{ ...REQUIRED, ENTRA_INSTANCE: 'http://localhost:8443' }, 'ENTRA_INSTANCE', /https/],
    [{ ...REQUIRED, ENTRA_INSTANCE: 'https://localhost:8443/?tenant=x' }, 'ENTRA_INSTANCE', /query/],
    [{ ...REQUIRED, ENTRA_CA_FILE: '/nonexistent/ca.pem' }, 'ENTRA_CA_FILE', /readable/],
    [{ ...REQUIRED, ENTRA_TENANT_ID: `${TENANT},contoso` }, 'ENTRA_TENANT_ID', /GUID/],
    [{ ...REQUIRED, API_ALLOWED_CLIENT_IDS: 'partner-app' }, 'API_ALLOWED_CLIENT_IDS', /GUID/],
    [{ ...REQUIRED, API_ALLOWED_CLIENT_IDS: `${CLIENT_A},,${CLIENT_B}` }, 'API_ALLOWED_CLIENT_IDS', /GUID/],
    [
      { ...REQUIRED, API_REQUIRE_CERTIFICATE_CLIENTS: 'certificate' },
      'API_REQUIRE_CERTIFICATE_CLIENTS',
      /true or false/,
    ],
    [{ ...REQUIRED, API_ACCEPTED_TOKEN_VERSIONS: '3.0' }, 'API_ACCEPTED_TOKEN_VERSIONS', /1\.0 and\/or 2\.0/],
    [{ ...REQUIRED, API_TOKEN_CACHE_SIZE: '-5' }, 'API_TOKEN_CACHE_SIZE', /integer/],
    [{ ...REQUIRED, API_TOKEN_CACHE_SIZE: '2000000' }, 'API_TOKEN_CACHE_SIZE', /1000000/],
    [
      { ...REQUIRED, CERTFLOW_CLOCK_OFFSET: 'an hour' },
      'CERTFLOW_CLOCK_OFFSET',
      /"an hour" is not a clock offset/,
    ],
    [
      { ...REQUIRED, NODE_ENV: 'production', CERTFLOW_CLOCK_OFFSET: '+2h' },
      'CERTFLOW_CLOCK_OFFSET',
      /must not be set when NODE_ENV=production/,
    ],
    [
      { ...REQUIRED, NODE_ENV: 'production', CERTFLOW_CLOCK_FILE: '/srv/stack/clock.json' },
      'CERTFLOW_CLOCK_FILE',
      /must not be set when NODE_ENV=production/,
    ],
  ])('refuses %j naming %s', (env, variable, problem) => {
    const err = configError(() => loadApiConfig(env));
    expect(err.variable).toBe(variable);
    expect(err.code).toBe('ERR_CONFIG_INVALID');
    expect(err.message.startsWith(`${variable} `)).toBe(true);
    expect(err.message).toMatch(problem);
  });

  it('refuses a damaged CERTFLOW_CLOCK_FILE naming it, and takes the real time in production', () => {
    const file = join(dir, 'clock.json');
    writeFileSync(file, '{"offsetMs": "+2h"}');
    const err = configError(() => loadApiConfig({ ...REQUIRED, CERTFLOW_CLOCK_FILE: file }));
    expect(err.message).toBe(`CERTFLOW_CLOCK_FILE ${file}: "offsetMs" is not a number`);
    expect(
      loadApiConfig({ ...REQUIRED, NODE_ENV: 'production', CERTFLOW_CLOCK_OFFSET: '' }).clock.offsetMs,
    ).toBe(0);
  });

  it.each([
    ['no PEM at all', 'hello'],
    ['a private key', TEST_PRIVATE_KEY_PEM],
    ['a certificate that does not parse', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'],
  ])('refuses an ENTRA_CA_FILE that holds %s', (_, content) => {
    const notPem = join(dir, 'not-a-ca.pem');
    writeFileSync(notPem, content);
    expect(configError(() => loadApiConfig({ ...REQUIRED, ENTRA_CA_FILE: notPem })).variable).toBe(
      'ENTRA_CA_FILE',
    );
  });
});

describe('validateApiConfig', () => {
  const valid: ApiConfigInput = {
    host: '127.0.0.1',
    port: 0,
    entraInstance: 'https://login.microsoftonline.com',
    tenantIds: [TENANT],
    audiences: ['x'],
  };

  it('names the variable for a bad value built in code', () => {
    expect(configError(() => validateApiConfig({ ...valid, port: 70000 })).variable).toBe('PORT');
    expect(configError(() => validateApiConfig({ ...valid, audiences: [] })).variable).toBe('API_AUDIENCES');
    expect(configError(() => validateApiConfig({ ...valid, tenantIds: [] })).variable).toBe(
      'ENTRA_TENANT_ID',
    );
    expect(configError(() => validateApiConfig({ ...valid, acceptedTokenVersions: [] })).variable).toBe(
      'API_ACCEPTED_TOKEN_VERSIONS',
    );
  });

  it('applies the defaults of the authorization options left out', () => {
    expect(validateApiConfig(valid)).toMatchObject({
      allowedClientIds: [],
      requireCertificateClients: false,
      acceptedTokenVersions: ['1.0', '2.0'],
      tokenCacheSize: 10_000,
      allowedHosts: [],
    });
  });
});

describe('entraAuthOptions', () => {
  it('hands the Entra settings to EntraAuthModule, with the CA file read', () => {
    const ca = join(dir, 'ca-options.crt.pem');
    writeFileSync(ca, TEST_CA_PEM);
    const config = loadApiConfig({
      ...REQUIRED,
      ENTRA_INSTANCE: 'https://login.microsoftonline.us/',
      ENTRA_CA_FILE: ca,
      API_ACCEPTED_TOKEN_VERSIONS: '2.0',
      API_ALLOWED_CLIENT_IDS: CLIENT_A,
      API_REQUIRE_CERTIFICATE_CLIENTS: 'true',
      API_TOKEN_CACHE_SIZE: '7',
    });
    expect(entraAuthOptions(config)).toEqual({
      instance: 'https://login.microsoftonline.us',
      tenantIds: [TENANT.toLowerCase()],
      audiences: ['api-app-id'],
      acceptedTokenVersions: ['2.0'],
      allowedClientIds: [CLIENT_A],
      requireCertificateClients: true,
      tokenCacheSize: 7,
      ca: readFileSync(ca, 'utf8'),
      clock: config.clock,
    });
    // Whatever loadApiConfig accepts, the module accepts too.
    expect(validateEntraAuthOptions(entraAuthOptions(config)).instance).toBe(
      'https://login.microsoftonline.us',
    );
  });
});
