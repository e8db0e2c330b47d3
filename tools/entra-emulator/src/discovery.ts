/**
 * OpenID Connect discovery and JWKS, shaped like Entra's v2.0 documents. Whether the tenant
 * is addressed by GUID or domain, the URLs inside always use the GUID, as Entra's do.
 */
import { jwkOf, type Jwk, type SigningKey } from './signing-keys';

/** Entra serves both documents as cacheable for a day. */
export const DISCOVERY_CACHE_CONTROL = 'max-age=86400, private';

export function openIdConfiguration(baseUrl: string, tenantId: string): Record<string, unknown> {
  const authority = `${baseUrl}/${tenantId}`;
  const host = new URL(baseUrl).host;
  return {
    token_endpoint: `${authority}/oauth2/v2.0/token`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    jwks_uri: `${authority}/discovery/v2.0/keys`,
    response_modes_supported: ['query', 'fragment', 'form_post'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
    scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
    issuer: `${authority}/v2.0`,
    request_uri_parameter_supported: false,
    userinfo_endpoint: `${baseUrl}/oidc/userinfo`,
    authorization_endpoint: `${authority}/oauth2/v2.0/authorize`,
    device_authorization_endpoint: `${authority}/oauth2/v2.0/devicecode`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${authority}/oauth2/v2.0/logout`,
    claims_supported: [
      'sub',
      'iss',
      'cloud_instance_name',
      'cloud_instance_host_name',
      'cloud_graph_host_name',
      'msgraph_host',
      'aud',
      'exp',
      'iat',
      'auth_time',
      'acr',
      'nonce',
      'preferred_username',
      'name',
      'tid',
      'ver',
      'at_hash',
      'c_hash',
      'email',
    ],
    kerberos_endpoint: `${authority}/kerberos`,
    tenant_region_scope: 'EU',
    cloud_instance_name: host,
    cloud_graph_host_name: host,
    msgraph_host: host,
    rbac_url: 'https://pas.windows.net',
  };
}

/**
 * The v1 document (`/{tenant}/.well-known/openid-configuration`): v1 token endpoint and the
 * v1 issuer `https://sts.windows.net/{tid}/`, as in v1 access tokens.
 */
export function openIdConfigurationV1(baseUrl: string, tenantId: string): Record<string, unknown> {
  const authority = `${baseUrl}/${tenantId}`;
  const v2 = openIdConfiguration(baseUrl, tenantId);
  return {
    ...v2,
    token_endpoint: `${authority}/oauth2/token`,
    jwks_uri: `${authority}/discovery/keys`,
    issuer: `https://sts.windows.net/${tenantId}/`,
    authorization_endpoint: `${authority}/oauth2/authorize`,
    device_authorization_endpoint: `${authority}/oauth2/devicecode`,
    end_session_endpoint: `${authority}/oauth2/logout`,
    microsoft_multi_refresh_token: true,
  };
}

export function jwks(keys: SigningKey[], issuer: string): { keys: Jwk[] } {
  return { keys: keys.map((key) => jwkOf(key, issuer)) };
}
