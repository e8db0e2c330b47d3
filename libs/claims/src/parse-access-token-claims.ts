/**
 * Reads the payload of a *verified* Entra ID access token (signature, issuer, audience and
 * lifetime already checked) into an {@link AppPrincipal}. Every claim the principal needs is
 * checked for presence, type and value; anything Entra would not issue is a {@link ClaimsError},
 * never an `undefined` in the result.
 *
 * @example
 *   const principal = parseAccessTokenClaims(verifiedPayload);
 *   principal.clientAuthentication === 'certificate';
 */
import type { AccessTokenClaims, ClientAuthenticationClaim } from './access-token-claims';
import type { AppPrincipal, ClientAuthentication } from './app-principal';
import { ClaimsError } from './errors';
import { isGuid } from './guid';

const CLIENT_AUTHENTICATION: Record<ClientAuthenticationClaim, ClientAuthentication> = {
  '0': 'public',
  '1': 'secret',
  '2': 'certificate',
};

/** Checks a verified payload against the shape of an Entra app-only access token (v1 or v2). */
export function readAccessTokenClaims(payload: unknown): AccessTokenClaims {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload))
    throw ClaimsError.notObject(payload);
  const claims = payload as Record<string, unknown>;

  const ver = claims['ver'];
  if (ver === undefined) throw ClaimsError.missing('ver');
  if (ver !== '1.0' && ver !== '2.0') throw ClaimsError.unsupportedVersion(ver);

  // A delegated (user) token carries `scp` and, with the optional claim, idtyp=user.
  const idtyp = claims['idtyp'];
  if (idtyp !== undefined) {
    if (typeof idtyp !== 'string') throw ClaimsError.invalid('idtyp', 'the string "app"', idtyp);
    if (idtyp !== 'app') throw ClaimsError.notAppToken('idtyp', idtyp);
  }
  if (claims['scp'] !== undefined) throw ClaimsError.notAppToken('scp', claims['scp']);

  requireNonEmptyString(claims, 'aud');
  requireNonEmptyString(claims, 'iss');
  requireGuid(claims, 'tid');
  requireGuid(claims, 'oid');
  // jsonwebtoken checks exp only when present; a token without one would never expire.
  requireNumericDate(claims, 'exp');
  for (const optional of ['iat', 'nbf'])
    if (claims[optional] !== undefined) requireNumericDate(claims, optional);
  const roles = claims['roles'];
  if (
    roles !== undefined &&
    !(Array.isArray(roles) && roles.every((r) => typeof r === 'string' && r.length > 0))
  ) {
    throw ClaimsError.invalid('roles', 'an array of non-empty strings', roles);
  }

  const [clientIdClaim, clientAuthClaim] =
    ver === '2.0' ? (['azp', 'azpacr'] as const) : (['appid', 'appidacr'] as const);
  requireGuid(claims, clientIdClaim, `in a v${ver} token`);
  const acr = claims[clientAuthClaim];
  if (acr === undefined) throw ClaimsError.missing(clientAuthClaim, `in a v${ver} token`);
  if (acr !== '0' && acr !== '1' && acr !== '2')
    throw ClaimsError.invalid(clientAuthClaim, '"0", "1" or "2"', acr);

  return claims as AccessTokenClaims;
}

/** The caller described by a verified app-only access token. */
export function parseAccessTokenClaims(payload: unknown): AppPrincipal {
  const claims = readAccessTokenClaims(payload);
  const v2 = claims.ver === '2.0';
  return {
    tenantId: claims.tid,
    clientAppId: v2 ? claims.azp : claims.appid,
    objectId: claims.oid,
    roles: [...(claims.roles ?? [])],
    clientAuthentication: CLIENT_AUTHENTICATION[v2 ? claims.azpacr : claims.appidacr],
    tokenVersion: claims.ver,
    audience: claims.aud,
  };
}

function requireNonEmptyString(claims: Record<string, unknown>, claim: string): void {
  const value = claims[claim];
  if (value === undefined) throw ClaimsError.missing(claim);
  if (typeof value !== 'string' || value.length === 0)
    throw ClaimsError.invalid(claim, 'a non-empty string', value);
}

function requireNumericDate(claims: Record<string, unknown>, claim: string): void {
  const value = claims[claim];
  if (value === undefined) throw ClaimsError.missing(claim);
  if (typeof value !== 'number' || !Number.isFinite(value))
    throw ClaimsError.invalid(claim, 'a NumericDate (seconds)', value);
}

function requireGuid(claims: Record<string, unknown>, claim: string, context?: string): void {
  const value = claims[claim];
  if (value === undefined) throw ClaimsError.missing(claim, context);
  if (!isGuid(value)) throw ClaimsError.invalid(claim, 'a GUID', value);
}
