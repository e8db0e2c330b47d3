/**
 * App-only access tokens as Entra issues them for client credentials. The version follows
 * the *resource's* `api.requestedAccessTokenVersion` (2 → v2; null or 1 → v1), not the
 * endpoint that was called.
 */
import { randomInt } from 'node:crypto';
import { opaqueId } from './ids';
import { signCompactJwt, type SigningKey } from './signing-keys';

export type TokenLifetime = number | { min: number; max: number };

/** Entra's documented default: random between 60 and 90 minutes. */
export const DEFAULT_TOKEN_LIFETIME: TokenLifetime = { min: 3600, max: 5400 };

export interface AccessTokenRequest {
  tenantId: string;
  baseUrl: string;
  version: 1 | 2;
  /** v2: the resource's appId; v1: the identifier used in the scope. */
  audience: string;
  clientAppId: string;
  clientServicePrincipalId: string;
  /** "1" client secret, "2" certificate. */
  clientAuthentication: '1' | '2';
  roles: string[];
  now: Date;
  lifetimeSeconds: number;
}

export function pickLifetime(lifetime: TokenLifetime): number {
  if (typeof lifetime === 'number') return lifetime;
  return lifetime.min === lifetime.max ? lifetime.min : randomInt(lifetime.min, lifetime.max + 1);
}

export function v2Issuer(baseUrl: string, tenantId: string): string {
  return `${baseUrl}/${tenantId}/v2.0`;
}

export function v1Issuer(tenantId: string): string {
  return `https://sts.windows.net/${tenantId}/`;
}

export function accessTokenClaims(req: AccessTokenRequest): Record<string, unknown> {
  const iat = Math.floor(req.now.getTime() / 1000);
  const common = { iat, nbf: iat, exp: iat + req.lifetimeSeconds };
  // Like Entra, `roles` is left out rather than sent empty when nothing is assigned.
  const roles = req.roles.length > 0 ? { roles: req.roles } : {};
  if (req.version === 2) {
    return {
      aud: req.audience,
      iss: v2Issuer(req.baseUrl, req.tenantId),
      ...common,
      azp: req.clientAppId,
      azpacr: req.clientAuthentication,
      idtyp: 'app',
      oid: req.clientServicePrincipalId,
      ...roles,
      sub: req.clientServicePrincipalId,
      tid: req.tenantId,
      uti: opaqueId(),
      ver: '2.0',
    };
  }
  return {
    aud: req.audience,
    iss: v1Issuer(req.tenantId),
    ...common,
    appid: req.clientAppId,
    appidacr: req.clientAuthentication,
    idtyp: 'app',
    oid: req.clientServicePrincipalId,
    ...roles,
    sub: req.clientServicePrincipalId,
    tid: req.tenantId,
    uti: opaqueId(),
    ver: '1.0',
  };
}

export function signAccessToken(key: SigningKey, version: 1 | 2, claims: Record<string, unknown>): string {
  const header =
    version === 2
      ? { typ: 'JWT', alg: 'RS256', kid: key.kid }
      : { typ: 'JWT', alg: 'RS256', x5t: key.kid, kid: key.kid };
  return signCompactJwt(key, header, claims);
}
