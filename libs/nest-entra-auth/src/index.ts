export { EntraAuthModule, type EntraAuthAsyncOptions } from './entra-auth.module';
export {
  EntraAuthOptionsError,
  isCertificatePem,
  openIdMetadataUrl,
  validateEntraAuthOptions,
  type EntraAuthOptions,
  type ResolvedEntraAuthOptions,
} from './entra-auth-options';
export { ENTRA_AUTH_OPTIONS } from './entra-auth.tokens';
export {
  Public,
  RequireAppRoles,
  CurrentPrincipal,
  PUBLIC_ROUTE,
  REQUIRED_APP_ROLES,
} from './auth-decorators';
export {
  AuthFailure,
  SigningKeysUnavailableError,
  UnknownSigningKeyError,
  type AuthFailureCode,
} from './auth-failure';
export { authFailureOf } from './entra-jwt-auth.guard';
export { EntraJwtAuthGuard } from './entra-jwt-auth.guard';
export { ClientPolicyGuard } from './client-policy.guard';
export { AppRolesGuard } from './app-roles.guard';
export { EntraAuthority, STARTUP_DISCOVERY_WAIT_MS, type AuthorityReadiness } from './entra-authority';
export { SigningKeyStore, type SigningKeyStoreOptions } from './signing-key-store';
export { OpenIdMetadataError, fetchOpenIdMetadata, type OpenIdMetadata } from './openid-metadata';
export { inspectCompactJws, MAX_TOKEN_BYTES, type InspectedJws } from './compact-jws';
export { parseJsonObjectStrict, DuplicateMemberError } from './strict-json';
export type { VerifiedPrincipal } from './verified-principal';
