/**
 * Access tokens for the API's tests: Entra-shaped claims for a tenant, and tokens signed
 * with keys the API must *not* trust (generated here).
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, generateKeyPair } from 'jose';

export interface TokenAuthority {
  tenantId: string;
  /** v2 issuer, `{instance}/{tenant}/v2.0`. */
  issuer: string;
}

export const API_APP_ID = '6e1f9a0c-3b2d-4c5e-8f70-91a2b3c4d5e6';
export const API_APP_ID_URI = 'api://certflow-orders';
export const PARTNER_APP_ID = '0b7c6d5e-4f3a-4b2c-9d1e-2f3a4b5c6d7e';
export const PARTNER_SP_ID = '5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a';

/** The v2 app-only claims the emulator issues to a certificate client with Orders.Read. */
export function appTokenClaims(
  authority: TokenAuthority,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    aud: API_APP_ID,
    iss: authority.issuer,
    iat: now,
    nbf: now,
    exp: now + 3600,
    azp: PARTNER_APP_ID,
    azpacr: '2',
    idtyp: 'app',
    oid: PARTNER_SP_ID,
    sub: PARTNER_SP_ID,
    tid: authority.tenantId,
    roles: ['Orders.Read'],
    uti: randomUUID().replace(/-/g, ''),
    ver: '2.0',
    ...overrides,
  };
}

/** RS256 with a freshly generated key no JWKS publishes, under whichever `kid` the caller picks (unknown, or a trusted one's). */
export async function signWithUntrustedKey(claims: Record<string, unknown>, kid: string): Promise<string> {
  const { privateKey } = await generateKeyPair('RS256');
  return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid }).sign(privateKey);
}

/** The `kid` of a compact JWS. */
export function kidOf(token: string): string {
  const header = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8')) as {
    kid?: string;
  };
  if (!header.kid) throw new Error('token has no kid');
  return header.kid;
}
