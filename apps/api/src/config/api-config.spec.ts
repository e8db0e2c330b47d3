import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ApiConfig, entraIssuers, entraJwksUri, loadApiConfig, validateApiConfig } from './api-config';
import { ConfigError } from './config-error';

const TENANT = 'A1B2C3D4-0000-4000-8000-0123456789AB';
const REQUIRED = { ENTRA_TENANT_ID: TENANT, API_AUDIENCES: 'api-app-id' };
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
    expect(loadApiConfig(REQUIRED)).toEqual({
      host: '127.0.0.1',
      port: 3000,
      entraInstance: 'https://login.microsoftonline.com',
      tenantId: TENANT.toLowerCase(),
      audiences: ['api-app-id'],
    });
  });

  it('reads every variable, splitting and trimming the audience list', () => {
    const ca = join(dir, 'ca.crt.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    expect(
      loadApiConfig({
        HOST: '0.0.0.0',
        PORT: '0',
        ENTRA_INSTANCE: 'https://localhost:8443/',
        ENTRA_TENANT_ID: TENANT,
        API_AUDIENCES: ' 6e1f9a0c-3b2d-4c5e-8f70-91a2b3c4d5e6 , api://certflow-orders ',
        ENTRA_CA_FILE: ca,
      }),
    ).toEqual({
      host: '0.0.0.0',
      port: 0,
      entraInstance: 'https://localhost:8443',
      tenantId: TENANT.toLowerCase(),
      audiences: ['6e1f9a0c-3b2d-4c5e-8f70-91a2b3c4d5e6', 'api://certflow-orders'],
      caFile: ca,
    });
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
  ])('refuses %j naming %s', (env, variable, problem) => {
    const err = configError(() => loadApiConfig(env));
    expect(err.variable).toBe(variable);
    expect(err.code).toBe('ERR_CONFIG_INVALID');
    expect(err.message.startsWith(`${variable} `)).toBe(true);
    expect(err.message).toMatch(problem);
  });

  it('refuses an ENTRA_CA_FILE that holds no PEM certificate', () => {
    const notPem = join(dir, 'key.txt');
    writeFileSync(notPem, 'hello');
    expect(configError(() => loadApiConfig({ ...REQUIRED, ENTRA_CA_FILE: notPem })).variable).toBe('ENTRA_CA_FILE');
  });
});

describe('validateApiConfig', () => {
  const valid: ApiConfig = { host: '127.0.0.1', port: 0, entraInstance: 'https://login.microsoftonline.com', tenantId: TENANT, audiences: ['x'] };

  it('names the variable for a bad value built in code', () => {
    expect(configError(() => validateApiConfig({ ...valid, port: 70000 })).variable).toBe('PORT');
    expect(configError(() => validateApiConfig({ ...valid, audiences: [] })).variable).toBe('API_AUDIENCES');
  });
});

describe('Entra endpoints for the tenant', () => {
  it('accepts the v2 issuer of the instance and the v1 sts.windows.net issuer', () => {
    const config = loadApiConfig({ ...REQUIRED, ENTRA_INSTANCE: 'https://localhost:8443' });
    const tid = TENANT.toLowerCase();
    expect(entraIssuers(config)).toEqual([`https://localhost:8443/${tid}/v2.0`, `https://sts.windows.net/${tid}/`]);
    expect(entraJwksUri(config)).toBe(`https://localhost:8443/${tid}/discovery/v2.0/keys`);
  });
});
