/**
 * `POST /{tenant}/oauth2/v2.0/token` for `grant_type=client_credentials`, authenticated by a
 * client assertion (certificate) or a client secret (form post or HTTP Basic), answering
 * with Entra's success shape or Entra's errors.
 */
import { pickLifetime, accessTokenClaims, signAccessToken, type TokenLifetime } from './access-tokens';
import { ASSERTION_TYPE, verifyClientAssertion, type ReplayGuard } from './client-assertion-verifier';
import { clientSecretMatches } from './client-secrets';
import type { Directory, ResolvedResource } from './directory';
import { entraErrors } from './entra-errors';
import type { TokenForm } from './form-body';
import { isGuid } from '@certflow/claims';
import type { SigningKey } from './signing-keys';
import type { StoredApplication } from './state-store';

export interface TokenEndpointContext {
  directory: Directory;
  signingKey: SigningKey;
  /** Base URL written into issuers (`https://localhost:PORT`). */
  baseUrl: string;
  /** Token endpoint URLs a client assertion may name as its `aud`. */
  audiences: string[];
  now: Date;
  clockSkewSeconds: number;
  lifetime: TokenLifetime;
  replayGuard?: ReplayGuard;
  /** 2 for `/oauth2/v2.0/token` (`scope`), 1 for the v1 `/oauth2/token` (`resource`). */
  protocol?: 1 | 2;
  /** Told the registered client as soon as it is known (metrics, sign-in log). */
  onClient?: (client: { appId: string; displayName: string; servicePrincipalId: string }) => void;
  /**
   * Told the credential the client presented (sign-in log): its type as soon as it is seen,
   * then the certificate the assertion named, or the secret's key id once it matched.
   */
  onCredential?: (credential: {
    type: 'certificate' | 'clientSecret';
    thumbprint?: string;
    keyId?: string;
  }) => void;
  /** Told the requested resource once it is resolved, even if the client then fails to authenticate (sign-in log). */
  onResource?: (resource: { appId: string; servicePrincipalId: string; displayName: string }) => void;
  /** Told about every token issued (metrics). */
  onIssued?: (issued: {
    clientAppId: string;
    resourceAppId: string;
    credential: 'certificate' | 'secret';
    tokenVersion: 1 | 2;
  }) => void;
}

/** The v1 endpoint's answer: Entra sends the numbers as strings there. */
export interface V1TokenResponse {
  token_type: 'Bearer';
  expires_in: string;
  ext_expires_in: string;
  expires_on: string;
  not_before: string;
  resource: string;
  access_token: string;
}

export interface TokenResponse {
  token_type: 'Bearer';
  expires_in: number;
  ext_expires_in: number;
  access_token: string;
}

const DEFAULT_SUFFIX = '/.default';
const OIDC_SCOPES = new Set(['openid', 'profile', 'offline_access']);

export async function handleTokenRequest(
  form: TokenForm,
  authorization: string | undefined,
  ctx: TokenEndpointContext,
): Promise<TokenResponse | V1TokenResponse> {
  const v1 = ctx.protocol === 1;
  const grantType = form.require('grant_type');
  if (grantType !== 'client_credentials') throw entraErrors.unsupportedGrantType(grantType.slice(0, 100));

  const basic = parseBasic(authorization);
  const formClientId = form.get('client_id');
  if (basic && formClientId !== undefined && formClientId !== basic.clientId) {
    throw entraErrors.malformedRequest(
      'The client_id in the body differs from the one in the Authorization header.',
    );
  }
  const clientId = formClientId ?? basic?.clientId;
  if (clientId === undefined) throw entraErrors.missingParameter('client_id');
  const scopeOrResource = form.require(v1 ? 'resource' : 'scope');

  const { directory } = ctx;
  const app = isGuid(clientId) ? directory.applicationByAppId(clientId) : undefined;
  const clientSp = app ? directory.servicePrincipalByAppId(app.appId) : undefined;
  if (!app || !clientSp)
    throw entraErrors.applicationNotFound(clientId.slice(0, 100), directory.tenant.displayName);
  ctx.onClient?.({ appId: app.appId, displayName: app.displayName, servicePrincipalId: clientSp.id });

  // Resolved before the client authenticates, so that a refused sign-in still names its
  // resource; a resource error is still reported only after authentication, as before.
  let resource: ResolvedResource | undefined;
  let resourceError: unknown;
  try {
    resource = v1 ? resolveV1Resource(scopeOrResource, directory) : resolveScope(scopeOrResource, directory);
    ctx.onResource?.({
      appId: resource.appId,
      servicePrincipalId: resource.servicePrincipal.id,
      displayName: resource.servicePrincipal.displayName,
    });
  } catch (err) {
    resourceError = err;
  }
  const clientAuthentication = await authenticateClient(form, basic, app, ctx);
  if (!resource) throw resourceError;

  const lifetimeSeconds = pickLifetime(ctx.lifetime);
  const claims = accessTokenClaims({
    tenantId: directory.tenant.id,
    baseUrl: ctx.baseUrl,
    version: resource.tokenVersion,
    audience: resource.tokenVersion === 2 ? resource.appId : resource.requestedIdentifier,
    clientAppId: app.appId,
    clientServicePrincipalId: clientSp.id,
    clientAuthentication,
    roles: directory.rolesOf(clientSp.id, resource.servicePrincipal),
    now: ctx.now,
    lifetimeSeconds,
  });
  const accessToken = signAccessToken(ctx.signingKey, resource.tokenVersion, claims);
  ctx.onIssued?.({
    clientAppId: app.appId,
    resourceAppId: resource.appId,
    credential: clientAuthentication === '2' ? 'certificate' : 'secret',
    tokenVersion: resource.tokenVersion,
  });
  if (v1) {
    return {
      token_type: 'Bearer',
      expires_in: String(lifetimeSeconds),
      ext_expires_in: String(lifetimeSeconds),
      expires_on: String(claims.exp),
      not_before: String(claims.nbf),
      resource: scopeOrResource,
      access_token: accessToken,
    };
  }
  return {
    token_type: 'Bearer',
    expires_in: lifetimeSeconds,
    ext_expires_in: lifetimeSeconds,
    access_token: accessToken,
  };
}

/** v1: `resource` is the App ID URI or app id itself, without `/.default`. */
function resolveV1Resource(resource: string, directory: Directory) {
  const found = directory.resolveResource(resource);
  if (!found) throw entraErrors.resourceNotFound(resource.slice(0, 200), directory.tenant.displayName);
  return found;
}

async function authenticateClient(
  form: TokenForm,
  basic: { secret: string } | undefined,
  app: StoredApplication,
  ctx: TokenEndpointContext,
): Promise<'1' | '2'> {
  const assertion = form.get('client_assertion');
  const formSecret = form.get('client_secret');
  const credentials = [assertion, formSecret, basic?.secret].filter((c) => c !== undefined);
  if (credentials.length === 0) throw entraErrors.noCredential();
  // RFC 6749 §2.3: a client MUST NOT use more than one authentication method per request.
  if (credentials.length > 1)
    throw entraErrors.malformedRequest(
      'Use exactly one of client_assertion, client_secret or HTTP Basic authentication.',
    );

  if (assertion !== undefined) {
    ctx.onCredential?.({ type: 'certificate' });
    const type = form.require('client_assertion_type');
    if (type !== ASSERTION_TYPE)
      throw entraErrors.malformedRequest(`client_assertion_type must be '${ASSERTION_TYPE}'.`);
    await verifyClientAssertion(assertion, {
      app,
      audiences: ctx.audiences,
      now: ctx.now,
      clockSkewSeconds: ctx.clockSkewSeconds,
      ...(ctx.replayGuard ? { replayGuard: ctx.replayGuard } : {}),
      ...(ctx.onCredential
        ? { onCredential: (named) => ctx.onCredential?.({ type: 'certificate', ...named }) }
        : {}),
    });
    return '2';
  }
  ctx.onCredential?.({ type: 'clientSecret' });
  const secret = (formSecret ?? basic?.secret) as string;
  const match = app.passwordCredentials.find((p) => clientSecretMatches(secret, p));
  if (!match) throw entraErrors.invalidSecret(app.appId);
  ctx.onCredential?.({ type: 'clientSecret', keyId: match.keyId });
  if (ctx.now > new Date(match.endDateTime) || ctx.now < new Date(match.startDateTime))
    throw entraErrors.expiredSecret(app.appId);
  return '1';
}

/** Exactly one `<App ID URI or appId>/.default` naming a service principal of this tenant. */
function resolveScope(scope: string, directory: Directory) {
  const requested = scope.split(/\s+/).filter((s) => s !== '');
  if (requested.length === 0) throw entraErrors.missingParameter('scope');
  // Entra ID ignores the OpenID Connect scopes in a client-credentials request; MSAL for Go (1.x,
  // AppendDefaultScopes) and MSAL4J (1.26.1) add `openid offline_access profile` to every one.
  const scopes = requested.filter((s) => !OIDC_SCOPES.has(s));
  const notDefault = scopes.length === 0 ? requested[0] : scopes.find((s) => !s.endsWith(DEFAULT_SUFFIX));
  if (notDefault !== undefined) throw entraErrors.scopeNotDefault(notDefault.slice(0, 200));
  if (scopes.length > 1) throw entraErrors.invalidScope(scope.slice(0, 400));
  const identifier = scopes[0]!.slice(0, -DEFAULT_SUFFIX.length);
  if (identifier === '') throw entraErrors.invalidScope(scopes[0]!);
  const resource = directory.resolveResource(identifier);
  if (!resource) throw entraErrors.resourceNotFound(identifier.slice(0, 200), directory.tenant.displayName);
  return resource;
}

/** `Authorization: Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1). */
function parseBasic(header: string | undefined): { clientId: string; secret: string } | undefined {
  if (!header || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0)
    throw entraErrors.malformedRequest('The Authorization header is not valid HTTP Basic credentials.');
  try {
    const clientId = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
    const secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
    return { clientId, secret };
  } catch {
    throw entraErrors.malformedRequest('The Authorization header is not valid HTTP Basic credentials.');
  }
}
