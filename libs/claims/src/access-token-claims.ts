/**
 * The claims of Entra ID app-only access tokens, v1 and v2, as Entra issues them
 * (see docs: access-token-claims-reference). Only the claims certflow reads are typed;
 * others (`iat`, `nbf`, `exp`, `uti`, `rh`, `aio`, `xms_*` …) may be present.
 */

/** The value of `azpacr` / `appidacr`. */
export type ClientAuthenticationClaim = '0' | '1' | '2';

interface CommonAccessTokenClaims {
  aud: string;
  iss: string;
  tid: string;
  oid: string;
  sub?: string;
  roles?: string[];
  /** Optional claim, present only in app-only tokens. */
  idtyp?: 'app';
  iat?: number;
  nbf?: number;
  exp: number;
  uti?: string;
  [claim: string]: unknown;
}

export interface AccessTokenClaimsV1 extends CommonAccessTokenClaims {
  ver: '1.0';
  appid: string;
  appidacr: ClientAuthenticationClaim;
}

export interface AccessTokenClaimsV2 extends CommonAccessTokenClaims {
  ver: '2.0';
  azp: string;
  azpacr: ClientAuthenticationClaim;
}

export type AccessTokenClaims = AccessTokenClaimsV1 | AccessTokenClaimsV2;
