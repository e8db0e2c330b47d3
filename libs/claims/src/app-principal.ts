/**
 * The caller of an API as the API sees it after validating an app-only (client-credentials)
 * access token: one shape for v1 and v2 tokens.
 */

/** How the client proved its identity to Entra ID (`azpacr` / `appidacr`: "0", "1", "2"). */
export type ClientAuthentication = 'public' | 'secret' | 'certificate';

export type AccessTokenVersion = '1.0' | '2.0';

export interface AppPrincipal {
  /** `tid`: the tenant that issued the token. */
  readonly tenantId: string;
  /** `azp` (v2) or `appid` (v1): the client application's app id. */
  readonly clientAppId: string;
  /** `oid`: the client's service principal object id in the tenant. */
  readonly objectId: string;
  /** `roles`: app roles assigned to the client; empty when the claim is absent. */
  readonly roles: readonly string[];
  /** From `azpacr` (v2) or `appidacr` (v1). */
  readonly clientAuthentication: ClientAuthentication;
  /** `ver`. */
  readonly tokenVersion: AccessTokenVersion;
  /** `aud`: the API the token was issued for (app id GUID, or an App ID URI in v1). */
  readonly audience: string;
}
