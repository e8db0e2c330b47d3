import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_ENTRA_INSTANCE,
  readCertificateDirectoryConfig,
  readPartnerConfig,
  readTokenConfig,
  readTrustConfig,
} from './config';
import { ConfigError, type Env } from './env';
import { createSelfSignedCertificate } from '@certflow/certs';
import { tempDir } from '@certflow/testing';

const TENANT = '11111111-2222-3333-4444-555555555555';
const CLIENT = 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE';

const base: Env = {
  PARTNER_TENANT_ID: TENANT,
  PARTNER_CLIENT_ID: CLIENT,
  PARTNER_SCOPE: 'api://certflow-orders/.default',
  PARTNER_API_BASE_URL: 'https://127.0.0.1:8443/',
};

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => (dir = tempDir()));
  afterEach(() => dir.remove());

  it('reads a full configuration with defaults', () => {
    const config = readPartnerConfig(base, '/srv/partner');
    expect(config).toEqual({
      entraInstance: DEFAULT_ENTRA_INSTANCE,
      tenantId: TENANT,
      clientId: CLIENT.toLowerCase(),
      scope: 'api://certflow-orders/.default',
      apiBaseUrl: 'https://127.0.0.1:8443',
      certDir: '/srv/partner/.certflow/partner',
      expiryWarningDays: 30,
      pkcs11Env: {},
    });
  });

  it('reads PARTNER_REDIS_URL with a validated PARTNER_CACHE_KEY', () => {
    const key = Buffer.alloc(32, 7);
    key[0] = 1;
    const config = readTokenConfig({
      ...base,
      PARTNER_REDIS_URL: 'redis://127.0.0.1:6379/0',
      PARTNER_CACHE_KEY: key.toString('base64'),
    });
    expect(config.sharedCache?.store).toBe('redis');
    expect(config.sharedCache?.settings).toEqual({ url: 'redis://127.0.0.1:6379/0' });
    expect(config.sharedCache?.cacheKey.equals(key)).toBe(true);
    expect(() => readTokenConfig({ ...base, PARTNER_REDIS_URL: 'redis://h:1' })).toThrow(
      /^PARTNER_CACHE_KEY: is required/,
    );
    expect(() =>
      readTokenConfig({ ...base, PARTNER_REDIS_URL: 'redis://h:1', PARTNER_CACHE_KEY: 'password' }),
    ).toThrow(/^PARTNER_CACHE_KEY: must be 32 random bytes/);
    expect(() => readTokenConfig({ ...base, PARTNER_REDIS_URL: 'http://h:1' })).toThrow(/^PARTNER_REDIS_URL/);
  });

  it('reads the key passphrase and the expiry warning, naming bad values', () => {
    expect(
      readCertificateDirectoryConfig(
        { PARTNER_KEY_PASSPHRASE: ' long enough ', PARTNER_CERT_EXPIRY_WARNING_DAYS: '60' },
        '/srv',
      ),
    ).toMatchObject({ keyPassphrase: ' long enough ', expiryWarningDays: 60 });
    expect(() => readCertificateDirectoryConfig({ PARTNER_KEY_PASSPHRASE: 'short' })).toThrow(
      /^PARTNER_KEY_PASSPHRASE: must have at least 8/,
    );
    expect(() => readCertificateDirectoryConfig({ PARTNER_CERT_EXPIRY_WARNING_DAYS: '-1' })).toThrow(
      /^PARTNER_CERT_EXPIRY_WARNING_DAYS/,
    );
  });

  it('reads the PKCS#11 key store, module and PIN (untrimmed), naming bad values', () => {
    expect(
      readCertificateDirectoryConfig({
        PARTNER_KEY_STORE: 'pkcs11:token=partner;object=partner-2026',
        PARTNER_PKCS11_MODULE: '/usr/lib/softhsm/libsofthsm2.so',
        PARTNER_PKCS11_PIN: ' 1234 ',
      }),
    ).toMatchObject({
      keyStore: 'pkcs11:token=partner;object=partner-2026',
      pkcs11Env: { PARTNER_PKCS11_MODULE: '/usr/lib/softhsm/libsofthsm2.so', PARTNER_PKCS11_PIN: ' 1234 ' },
    });
    expect(() => readCertificateDirectoryConfig({ PARTNER_KEY_STORE: 'pkcs11:token=a;objekt=b' })).toThrow(
      /^PARTNER_KEY_STORE: .*did you mean 'object'/,
    );
    expect(() => readCertificateDirectoryConfig({ PARTNER_PKCS11_MODULE: 'libsofthsm2.so' })).toThrow(
      /^PARTNER_PKCS11_MODULE: must be an absolute path/,
    );
  });

  it('takes ENTRA_INSTANCE with a port, dropping the trailing slash', () => {
    expect(readTokenConfig({ ...base, ENTRA_INSTANCE: 'https://localhost:44321/' }).entraInstance).toBe(
      'https://localhost:44321',
    );
  });

  it('resolves PARTNER_CERT_DIR against the working directory, keeps absolute paths', () => {
    expect(readCertificateDirectoryConfig({ PARTNER_CERT_DIR: 'state/p' }, '/srv').certDir).toBe(
      '/srv/state/p',
    );
    expect(readCertificateDirectoryConfig({ PARTNER_CERT_DIR: '/abs/p' }, '/srv').certDir).toBe('/abs/p');
    expect(readCertificateDirectoryConfig({ PARTNER_CERT_DIR: '' }, '/srv').certDir).toBe(
      '/srv/.certflow/partner',
    );
  });

  it('cert commands need nothing but the directory', () => {
    expect(() => readCertificateDirectoryConfig({}, '/srv')).not.toThrow();
  });

  it.each([
    [{ PARTNER_TENANT_ID: undefined }, 'PARTNER_TENANT_ID', /is required/],
    [{ PARTNER_TENANT_ID: '  ' }, 'PARTNER_TENANT_ID', /is required/],
    [{ PARTNER_TENANT_ID: 'contoso.onmicrosoft.com' }, 'PARTNER_TENANT_ID', /must be a GUID/],
    [{ PARTNER_CLIENT_ID: '1234' }, 'PARTNER_CLIENT_ID', /must be a GUID/],
    [{ PARTNER_SCOPE: undefined }, 'PARTNER_SCOPE', /is required/],
    [{ PARTNER_SCOPE: 'api://certflow-orders/Orders.Read' }, 'PARTNER_SCOPE', /\/\.default/],
    [{ PARTNER_SCOPE: 'api://a/.default api://b/.default' }, 'PARTNER_SCOPE', /single scope/],
    [{ ENTRA_INSTANCE: 'http://localhost:8443' }, 'ENTRA_INSTANCE', /must use https/],
    [{ ENTRA_INSTANCE: 'not a url' }, 'ENTRA_INSTANCE', /absolute URL/],
    [{ ENTRA_INSTANCE: `https://localhost:8443/${TENANT}` }, 'ENTRA_INSTANCE', /without the tenant/],
    [{ PARTNER_API_BASE_URL: undefined }, 'PARTNER_API_BASE_URL', /is required/],
    [{ PARTNER_API_BASE_URL: 'ftp://x' }, 'PARTNER_API_BASE_URL', /https or http/],
    [{ PARTNER_API_BASE_URL: 'https://x/?a=1' }, 'PARTNER_API_BASE_URL', /query/],
    [
      { PARTNER_TOKEN_STORE: 'memory', PARTNER_REDIS_URL: 'redis://h:1' },
      'PARTNER_TOKEN_STORE',
      /"memory" but PARTNER_REDIS_URL \(a setting of the redis store\)/,
    ],
  ])('rejects %j naming %s', (patch, variable, message) => {
    const err = configError(() => readPartnerConfig({ ...base, ...patch }));
    expect(err.variable).toBe(variable);
    expect(err.message).toMatch(new RegExp(`^${variable}: `));
    expect(err.message).toMatch(message);
  });

  it('token commands do not need PARTNER_API_BASE_URL', () => {
    expect(() => readTokenConfig({ ...base, PARTNER_API_BASE_URL: undefined })).not.toThrow();
  });

  it('reads PARTNER_CA_FILE and checks that it is a PEM certificate', () => {
    const pair = createSelfSignedCertificate({ commonName: 'ca' });
    const good = join(dir.path, 'ca.pem');
    writeFileSync(good, pair.certificatePem);
    expect(readTrustConfig({ PARTNER_CA_FILE: 'ca.pem' }, dir.path)).toEqual({
      caFile: good,
      caPem: pair.certificatePem,
    });

    const missing = configError(() => readTrustConfig({ PARTNER_CA_FILE: join(dir.path, 'nope.pem') }));
    expect(missing.message).toMatch(/^PARTNER_CA_FILE: cannot read .*nope\.pem: ENOENT/);

    const garbage = join(dir.path, 'garbage.pem');
    writeFileSync(garbage, 'hello');
    expect(configError(() => readTrustConfig({ PARTNER_CA_FILE: garbage })).message).toMatch(
      /PARTNER_CA_FILE: .*holds no PEM certificate/,
    );

    const key = join(dir.path, 'key.pem');
    writeFileSync(key, pair.privateKeyPem + pair.certificatePem);
    expect(configError(() => readTrustConfig({ PARTNER_CA_FILE: key })).message).toMatch(
      /PARTNER_CA_FILE: .*private key/,
    );
  });
});
