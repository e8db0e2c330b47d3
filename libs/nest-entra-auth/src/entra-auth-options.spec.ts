import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  EntraAuthOptionsError,
  openIdMetadataUrl,
  validateEntraAuthOptions,
  type EntraAuthOptions,
} from './entra-auth-options';
import { systemClock } from '@certflow/clock';

const TENANT = 'A1B2C3D4-0000-4000-8000-0123456789AB';
/** PEM that is not a certificate: a private key made now (never a committed one). */
const PRIVATE_KEY_PEM = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  .privateKey.export({ type: 'pkcs8', format: 'pem' })
  .toString();
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
      clock: systemClock,
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
    [{ audiences: [' api://orders '] }, 'audiences'],
    [{ instance: `https://login.microsoftonline.com/${TENANT}` }, 'instance'],
    [{ instance: 'https://login.microsoftonline.com/common/v2.0' }, 'instance'],
    [{ ca: PRIVATE_KEY_PEM }, 'ca'],
    [{ ca: '-----BEGIN CERTIFICATE-----\nnot base64 DER\n-----END CERTIFICATE-----' }, 'ca'],
    [{ discoveryRetry: 5 }, 'discoveryRetry'],
    [{ clock: () => Date.now() }, 'clock'],
    [{ clock: null }, 'clock'],
  ])('refuses %j naming %s', (patch, option) => {
    const err = optionError({ ...VALID, ...patch });
    expect(err.option).toBe(option);
    expect(err.message.startsWith(`EntraAuthModule option ${option} `)).toBe(true);
  });
});

describe('misspelt options fail closed', () => {
  it.each([
    ['requireCertificateClient', true, 'requireCertificateClients'],
    ['allowedClientIDs', [TENANT], 'allowedClientIds'],
    ['acceptedTokenVersion', ['2.0'], 'acceptedTokenVersions'],
    ['Audiences', ['api://x'], 'audiences'],
  ])('refuses %s, which would leave a check off, and suggests the option meant', (typo, value, meant) => {
    const err = optionError({ ...VALID, [typo]: value });
    expect(err.option).toBe(typo);
    expect(err.message).toContain(`is not an option (did you mean ${meant}?)`);
  });

  it('refuses an unknown key of discoveryRetry, and names no option far from it', () => {
    expect(optionError({ ...VALID, discoveryRetry: { initialDelay: 5 } }).message).toContain(
      'option discoveryRetry.initialDelay is not an option (did you mean discoveryRetry.initialDelayMs?)',
    );
    expect(optionError({ ...VALID, colour: 'blue' }).message).not.toContain('did you mean');
  });

  it('takes a longer first retry delay without an explicit cap, and an instance with a path prefix', () => {
    expect(
      validateEntraAuthOptions({ ...VALID, discoveryRetry: { initialDelayMs: 60_000 } }).discoveryRetry,
    ).toEqual({
      initialDelayMs: 60_000,
      maxDelayMs: 60_000,
    });
    expect(validateEntraAuthOptions({ ...VALID, instance: 'https://idp.example/entra' }).instance).toBe(
      'https://idp.example/entra',
    );
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
