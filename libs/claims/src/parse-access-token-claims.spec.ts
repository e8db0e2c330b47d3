import { describe, expect, it } from 'vitest';
import { ClaimsError, ClaimsErrorCode, parseAccessTokenClaims, readAccessTokenClaims } from './index';

const TENANT = '8f2b1c1e-5a4d-4c3b-9e8f-0a1b2c3d4e5f';
const API_APP = '11111111-2222-4333-8444-555555555555';
const PARTNER_APP = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
const PARTNER_SP = '99999999-8888-4777-8666-555555555555';
const now = Math.floor(Date.now() / 1000);

/** A v2 app-only token payload as Entra ID (and the emulator) issues it for a certificate client. */
function v2Claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    aud: API_APP,
    iss: `https://login.microsoftonline.com/${TENANT}/v2.0`,
    iat: now,
    nbf: now,
    exp: now + 3600,
    azp: PARTNER_APP,
    azpacr: '2',
    idtyp: 'app',
    oid: PARTNER_SP,
    sub: PARTNER_SP,
    tid: TENANT,
    roles: ['Orders.Read'],
    uti: 'AbCdEf0123',
    ver: '2.0',
    ...overrides,
  };
}

/** A v1 app-only token payload (resource with accessTokenAcceptedVersion null/1), client secret. */
function v1Claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    aud: 'api://certflow-orders',
    iss: `https://sts.windows.net/${TENANT}/`,
    iat: now,
    nbf: now,
    exp: now + 3600,
    appid: PARTNER_APP,
    appidacr: '1',
    oid: PARTNER_SP,
    sub: PARTNER_SP,
    tid: TENANT,
    roles: ['Orders.Read', 'Orders.Write'],
    ver: '1.0',
    ...overrides,
  };
}

function without(claims: Record<string, unknown>, name: string): Record<string, unknown> {
  const copy = { ...claims };
  delete copy[name];
  return copy;
}

function errorOf(payload: unknown): ClaimsError {
  try {
    parseAccessTokenClaims(payload);
  } catch (err) {
    expect(err).toBeInstanceOf(ClaimsError);
    return err as ClaimsError;
  }
  throw new Error('expected parseAccessTokenClaims to throw');
}

function expectClaimsError(payload: unknown, code: ClaimsErrorCode, claim?: string): void {
  const err = errorOf(payload);
  expect({ code: err.code, claim: err.claim }).toEqual({ code, claim });
  if (claim) expect(err.message).toContain(`"${claim}"`);
}

describe('parseAccessTokenClaims', () => {
  it('maps a v2 certificate-client token to an AppPrincipal', () => {
    expect(parseAccessTokenClaims(v2Claims())).toEqual({
      tenantId: TENANT,
      clientAppId: PARTNER_APP,
      objectId: PARTNER_SP,
      roles: ['Orders.Read'],
      clientAuthentication: 'certificate',
      tokenVersion: '2.0',
      audience: API_APP,
    });
  });

  it('maps a v1 token through appid/appidacr, keeping an App ID URI audience', () => {
    expect(parseAccessTokenClaims(v1Claims())).toEqual({
      tenantId: TENANT,
      clientAppId: PARTNER_APP,
      objectId: PARTNER_SP,
      roles: ['Orders.Read', 'Orders.Write'],
      clientAuthentication: 'secret',
      tokenVersion: '1.0',
      audience: 'api://certflow-orders',
    });
  });

  it.each([
    ['0', 'public'],
    ['1', 'secret'],
    ['2', 'certificate'],
  ] as const)('reads azpacr "%s" as %s', (azpacr, expected) => {
    expect(parseAccessTokenClaims(v2Claims({ azpacr })).clientAuthentication).toBe(expected);
    expect(parseAccessTokenClaims(v1Claims({ appidacr: azpacr })).clientAuthentication).toBe(expected);
  });

  it('gives an empty role list when the token has no roles claim (no app role assigned)', () => {
    expect(parseAccessTokenClaims(without(v2Claims(), 'roles')).roles).toEqual([]);
  });

  it('accepts a token without the optional idtyp claim', () => {
    expect(parseAccessTokenClaims(without(v2Claims(), 'idtyp')).clientAppId).toBe(PARTNER_APP);
  });

  it('returns a principal whose roles are a copy, not the payload array', () => {
    const payload = v2Claims();
    const principal = parseAccessTokenClaims(payload);
    (payload['roles'] as string[]).push('Orders.Write');
    expect(principal.roles).toEqual(['Orders.Read']);
  });

  it.each([null, undefined, 'a.b.c', 42, ['ver']])(
    'rejects a payload that is not an object (%j)',
    (payload) => {
      expectClaimsError(payload, 'ERR_CLAIMS_NOT_OBJECT');
    },
  );

  it('rejects a missing ver', () => {
    expectClaimsError(without(v2Claims(), 'ver'), 'ERR_CLAIM_MISSING', 'ver');
  });

  it.each(['3.0', '2', 2, null])('rejects ver %j as unsupported', (ver) => {
    expectClaimsError(v2Claims({ ver }), 'ERR_TOKEN_VERSION_UNSUPPORTED', 'ver');
  });

  it.each(['tid', 'oid', 'aud', 'iss', 'exp', 'azp', 'azpacr'])('rejects a v2 token without %s', (claim) => {
    expectClaimsError(without(v2Claims(), claim), 'ERR_CLAIM_MISSING', claim);
  });

  it.each(['appid', 'appidacr'])(
    'rejects a v1 token without %s, even if it carries the v2 claim',
    (claim) => {
      expectClaimsError(
        without(v1Claims({ azp: PARTNER_APP, azpacr: '2' }), claim),
        'ERR_CLAIM_MISSING',
        claim,
      );
    },
  );

  it.each([
    ['roles', 'Orders.Read'],
    ['roles', [1, 2]],
    ['roles', ['Orders.Read', '']],
    ['roles', null],
    ['roles', { 0: 'Orders.Read' }],
    ['azpacr', '3'],
    ['azpacr', 2],
    ['azpacr', ''],
    ['tid', 'contoso.onmicrosoft.com'],
    ['tid', 42],
    ['oid', ''],
    ['azp', 'not-a-guid'],
    ['aud', ''],
    ['aud', [API_APP]],
    ['iss', 7],
    ['idtyp', 1],
    ['exp', '1700000000'],
    ['nbf', null],
    ['iat', Number.NaN],
  ])('rejects %s = %j as invalid', (claim, value) => {
    expectClaimsError(v2Claims({ [claim]: value }), 'ERR_CLAIM_INVALID', claim);
  });

  it('rejects appidacr outside "0"/"1"/"2" in a v1 token', () => {
    expectClaimsError(v1Claims({ appidacr: 'certificate' }), 'ERR_CLAIM_INVALID', 'appidacr');
  });

  it('rejects a user token (idtyp "user")', () => {
    expectClaimsError(v2Claims({ idtyp: 'user' }), 'ERR_NOT_APP_TOKEN', 'idtyp');
  });

  it('rejects a delegated token carrying scp', () => {
    expectClaimsError(without(v2Claims({ scp: 'Orders.Read' }), 'idtyp'), 'ERR_NOT_APP_TOKEN', 'scp');
  });

  it('bounds claim values quoted in error messages', () => {
    const err = errorOf(v2Claims({ tid: 'x'.repeat(500) }));
    expect(err.message.length).toBeLessThan(200);
  });
});

describe('readAccessTokenClaims', () => {
  it('returns the typed claims, narrowed by ver', () => {
    const claims = readAccessTokenClaims(v1Claims());
    expect(claims.ver === '1.0' ? claims.appid : claims.azp).toBe(PARTNER_APP);
  });
});
