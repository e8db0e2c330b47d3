import { describe, expect, it } from 'vitest';
import {
  EntraAuthOptionsError,
  openIdMetadataUrl,
  validateEntraAuthOptions,
  type EntraAuthOptions,
} from './entra-auth-options';

const TENANT = 'A1B2C3D4-0000-4000-8000-0123456789AB';
const VALID: EntraAuthOptions = {
  instance: 'https://login.microsoftonline.com/',
  tenantIds: [TENANT],
  audiences: ['api://orders'],
};

function optionError(options: unknown): EntraAuthOptionsError {
  try {
    validateEntraAuthOptions(options as EntraAuthOptions);
  } catch (err) {
    expect(err).toBeInstanceOf(EntraAuthOptionsError);
    return err as EntraAuthOptionsError;
  }
  throw new Error('expected an EntraAuthOptionsError');
}

describe('validateEntraAuthOptions', () => {
  it('normalises the instance and tenant ids and applies the defaults', () => {
    expect(validateEntraAuthOptions(VALID)).toEqual({
      instance: 'https://login.microsoftonline.com',
      tenantIds: [TENANT.toLowerCase()],
      audiences: ['api://orders'],
      acceptedTokenVersions: ['1.0', '2.0'],
      allowedClientIds: [],
      requireCertificateClients: false,
      tokenCacheSize: 10_000,
      ca: undefined,
      discoveryRetry: { initialDelayMs: 500, maxDelayMs: 30_000 },
      requestTimeoutMs: 10_000,
      logFields: expect.any(Function),
    });
  });

  it.each([
    [{ instance: 'login.microsoftonline.com' }, 'instance'],
    [{ instance: 'http://login.microsoftonline.com' }, 'instance'],
    [{ instance: 'https://login.microsoftonline.com/?x=1' }, 'instance'],
    [{ tenantIds: [] }, 'tenantIds'],
    [{ tenantIds: ['contoso.onmicrosoft.com'] }, 'tenantIds'],
    [{ audiences: [''] }, 'audiences'],
    [{ audiences: undefined }, 'audiences'],
    [{ acceptedTokenVersions: ['3.0'] }, 'acceptedTokenVersions'],
    [{ acceptedTokenVersions: [] }, 'acceptedTokenVersions'],
    [{ allowedClientIds: ['partner-app'] }, 'allowedClientIds'],
    [{ requireCertificateClients: 'yes' }, 'requireCertificateClients'],
    [{ tokenCacheSize: -1 }, 'tokenCacheSize'],
    [{ tokenCacheSize: 2_000_000 }, 'tokenCacheSize'],
    [{ ca: 'not a certificate' }, 'ca'],
    [{ discoveryRetry: { initialDelayMs: 0 } }, 'discoveryRetry.initialDelayMs'],
    [{ discoveryRetry: { initialDelayMs: 1000, maxDelayMs: 10 } }, 'discoveryRetry.maxDelayMs'],
    [{ requestTimeoutMs: 0 }, 'requestTimeoutMs'],
    [{ logFields: { traceId: 'x' } }, 'logFields'],
  ])('refuses %j naming %s', (patch, option) => {
    const err = optionError({ ...VALID, ...patch });
    expect(err.option).toBe(option);
    expect(err.message.startsWith(`EntraAuthModule option ${option} `)).toBe(true);
  });
});

describe('openIdMetadataUrl', () => {
  it('is the v2 document, or the v1 one, of the tenant at the instance (sovereign clouds too)', () => {
    expect(openIdMetadataUrl('https://login.microsoftonline.us', 't', '2.0')).toBe(
      'https://login.microsoftonline.us/t/v2.0/.well-known/openid-configuration',
    );
    expect(openIdMetadataUrl('https://login.microsoftonline.us', 't', '1.0')).toBe(
      'https://login.microsoftonline.us/t/.well-known/openid-configuration',
    );
  });
});
