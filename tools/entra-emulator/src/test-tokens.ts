/**
 * Test tokens: access tokens with chosen claims (expired, not yet valid, wrong audience, wrong
 * issuer, without roles, v1 or v2), signed with the emulator's active signing key, for the
 * negative tests of an API's own suite. Minted by `POST /admin/testTokens` (the admin API's
 * write permission) or `mintTestToken()`, which calls it. Every one carries `certflow_test: true`,
 * which no caller can remove or change, and is recorded in the sign-in log as minted.
 */
import { isGuid } from '@certflow/claims';
import { accessTokenClaims, signAccessToken, v1Issuer, v2Issuer } from './access-tokens';
import { notTheAdminClient, type AdminRoute } from './admin-api';
import { TEST_TOKEN_CLAIM } from './graph-auth';
import type { Directory } from './directory';
import type { EmulatorInfo } from './emulator-info';
import { GraphClient } from './graph-client';
import { graphErrors } from './graph-errors';
import { newGuid } from './ids';
import { mintedDetails, type SignInAttempt } from './sign-in-log';
import type { SigningKey } from './signing-keys';

/** The claim every test token carries, and that no option can change (Graph and /admin refuse it). */
export { TEST_TOKEN_CLAIM };

export interface TestTokenOptions {
  /** App id or App ID URI of a service principal of the tenant (registered or first-party): `aud` and the version follow it as in an issued token. */
  resource?: string;
  /** `aud` exactly as given, instead of the resource's (wrong-audience tests). */
  audience?: string;
  /** Token version; default the resource's, or 1 (Entra's default) with `audience` alone. */
  version?: 1 | 2;
  /** App role values for `roles`; default none (no `roles` claim, as Entra sends it). */
  roles?: string[];
  /** The client (`azp` / `appid`); default a new GUID naming no application. */
  clientAppId?: string;
  /** `iss` exactly as given (wrong-issuer tests). */
  issuer?: string;
  /** Expired an hour ago (well past any validator's clock tolerance). */
  expired?: boolean;
  /** Valid only from an hour from now. */
  notYetValid?: boolean;
  /** `exp - iat` in seconds, 1 to 86400; default 3600. */
  lifetimeSeconds?: number;
  /** `iat`, `nbf`, `exp` as seconds from the emulator's clock (negative: in the past). */
  iatOffsetSeconds?: number;
  nbfOffsetSeconds?: number;
  expOffsetSeconds?: number;
  /** More claims, applied last (they may replace any claim but `certflow_test`). */
  claims?: Record<string, unknown>;
}

export interface MintedTestToken {
  accessToken: string;
  claims: Record<string, unknown>;
}

export interface TestTokenContext {
  directory: Directory;
  signingKey: SigningKey;
  /** The emulator's URL, in v2 issuers. */
  baseUrl: string;
  now: Date;
  /** The caller's address, for the sign-in log. */
  ipAddress: string;
  recordSignIn?: (attempt: SignInAttempt) => void;
}

const HOUR = 3600;
const MAX_OFFSET_SECONDS = 10 * 365 * 86_400;
const MAX_CLAIMS_JSON = 16 * 1024;
const MAX_CLAIMS_DEPTH = 32;
const FIELDS = new Set([
  'resource',
  'audience',
  'version',
  'roles',
  'clientAppId',
  'issuer',
  'expired',
  'notYetValid',
  'lifetimeSeconds',
  'iatOffsetSeconds',
  'nbfOffsetSeconds',
  'expOffsetSeconds',
  'claims',
]);

/** `POST /admin/testTokens`: mints one token; answers it with its claims. */
export function testTokensRoute(ctx: TestTokenContext): AdminRoute {
  return async (method, body, caller) => {
    // Checked here too, so minting stays the admin client's whatever context admin-api was given.
    if (caller?.appId !== ctx.directory.state.adminAppId.toLowerCase()) throw notTheAdminClient();
    if (method !== 'POST') throw graphErrors.methodNotAllowed();
    const options = parseTestTokenOptions(await body());
    const minted = mint(options, ctx, caller.appId);
    return { status: 200, body: { ...minted } };
  };
}

/**
 * Mints a test token through the admin API of a running emulator (in this process or another),
 * with the admin credentials of its emulator.json. Rejects with GraphRequestError (400 naming
 * the option) on bad options.
 */
export async function mintTestToken(emulator: EmulatorInfo, options: TestTokenOptions): Promise<string> {
  const graph = await GraphClient.connect(emulator);
  try {
    return await graph.mintTestToken(options);
  } finally {
    graph.close();
  }
}

function mint(options: TestTokenOptions, ctx: TestTokenContext, mintedBy: string): MintedTestToken {
  const { directory } = ctx;
  const resource = options.resource === undefined ? undefined : directory.resolveResource(options.resource);
  if (options.resource !== undefined && !resource)
    throw invalid(`resource '${options.resource}' names no service principal of this tenant`);
  const version = options.version ?? resource?.tokenVersion ?? 1;
  const audience = options.audience ?? (version === 2 ? resource!.appId : resource!.requestedIdentifier);
  const clientAppId = options.clientAppId?.toLowerCase() ?? newGuid();
  const clientSp = directory.servicePrincipalByAppId(clientAppId);
  const tenantId = directory.tenant.id;

  const lifetime = options.lifetimeSeconds ?? HOUR;
  const iatOffset = options.iatOffsetSeconds ?? (options.expired ? -(lifetime + HOUR) : 0);
  const nbfOffset = options.nbfOffsetSeconds ?? (options.notYetValid ? HOUR : iatOffset);
  const expOffset = options.expOffsetSeconds ?? Math.max(iatOffset, nbfOffset) + lifetime;
  const now = Math.floor(ctx.now.getTime() / 1000);

  const claims: Record<string, unknown> = {
    ...accessTokenClaims({
      tenantId,
      baseUrl: ctx.baseUrl,
      version,
      audience,
      clientAppId,
      clientServicePrincipalId: clientSp?.id ?? newGuid(),
      clientAuthentication: '2',
      roles: options.roles ?? [],
      now: ctx.now,
      lifetimeSeconds: lifetime,
    }),
    iat: now + iatOffset,
    nbf: now + nbfOffset,
    exp: now + expOffset,
    iss: options.issuer ?? (version === 2 ? v2Issuer(ctx.baseUrl, tenantId) : v1Issuer(tenantId)),
    ...options.claims,
    [TEST_TOKEN_CLAIM]: true,
  };
  const accessToken = signAccessToken(ctx.signingKey, version, claims);
  const app = directory.applicationByAppId(clientAppId);
  ctx.recordSignIn?.({
    appId: clientAppId,
    ...(app ? { appDisplayName: app.displayName } : {}),
    ...(clientSp ? { servicePrincipalId: clientSp.id } : {}),
    ...(resource
      ? {
          resourceId: resource.servicePrincipal.id,
          resourceDisplayName: resource.servicePrincipal.displayName,
          resourceAppId: resource.appId,
        }
      : {}),
    ipAddress: ctx.ipAddress,
    clientCredentialType: 'none',
    errorCode: 0,
    minted: true,
    additionalDetails: mintedDetails(mintedBy),
  });
  return { accessToken, claims };
}

/** Validates the request body; a 400 names the first bad field. */
export function parseTestTokenOptions(input: unknown): TestTokenOptions {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw invalid('the body must be a JSON object');
  const raw = input as Record<string, unknown>;
  for (const key of Object.keys(raw))
    if (!FIELDS.has(key)) throw invalid(`unknown field '${key.slice(0, 60)}'`);
  const options: TestTokenOptions = {};
  for (const name of ['resource', 'audience', 'issuer'] as const) {
    const value = raw[name];
    if (value === undefined) continue;
    if (typeof value !== 'string' || value.length === 0 || value.length > 400)
      throw invalid(`${name} must be a string of 1 to 400 characters`);
    options[name] = value;
  }
  if (options.resource === undefined && options.audience === undefined)
    throw invalid('resource or audience is required');
  if (raw.version !== undefined) {
    if (raw.version !== 1 && raw.version !== 2) throw invalid('version must be 1 or 2');
    options.version = raw.version;
  }
  if (raw.roles !== undefined) {
    const roles = raw.roles;
    if (
      !Array.isArray(roles) ||
      roles.length > 100 ||
      !roles.every((r) => typeof r === 'string' && r.length > 0 && r.length <= 120)
    )
      throw invalid('roles must be an array of at most 100 strings of 1 to 120 characters');
    options.roles = roles as string[];
  }
  if (raw.clientAppId !== undefined) {
    if (!isGuid(raw.clientAppId)) throw invalid('clientAppId must be a GUID');
    options.clientAppId = raw.clientAppId;
  }
  for (const name of ['expired', 'notYetValid'] as const) {
    if (raw[name] === undefined) continue;
    if (typeof raw[name] !== 'boolean') throw invalid(`${name} must be true or false`);
    options[name] = raw[name];
  }
  const lifetime = integer(raw, 'lifetimeSeconds', 1, 86_400);
  if (lifetime !== undefined) options.lifetimeSeconds = lifetime;
  for (const name of ['iatOffsetSeconds', 'nbfOffsetSeconds', 'expOffsetSeconds'] as const) {
    const value = integer(raw, name, -MAX_OFFSET_SECONDS, MAX_OFFSET_SECONDS);
    if (value !== undefined) options[name] = value;
  }
  conflict(options, 'expired', 'notYetValid');
  conflict(options, 'expired', 'expOffsetSeconds');
  conflict(options, 'notYetValid', 'nbfOffsetSeconds');
  conflict(options, 'lifetimeSeconds', 'expOffsetSeconds');
  if (raw.claims !== undefined) options.claims = extraClaims(raw.claims);
  return options;
}

function extraClaims(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid('claims must be a JSON object');
  const claims = value as Record<string, unknown>;
  if (Object.keys(claims).some((k) => k.length === 0)) throw invalid('claims: a claim name is empty');
  if (TEST_TOKEN_CLAIM in claims)
    throw invalid(
      `claims.${TEST_TOKEN_CLAIM} cannot be set: every test token carries ${TEST_TOKEN_CLAIM}: true`,
    );
  if (deeperThan(claims, MAX_CLAIMS_DEPTH))
    throw invalid(`claims must not nest objects or arrays more than ${MAX_CLAIMS_DEPTH} levels deep`);
  if (JSON.stringify(claims).length > MAX_CLAIMS_JSON)
    throw invalid(`claims must be at most ${MAX_CLAIMS_JSON} characters of JSON`);
  return claims;
}

/** Walked without recursion: a hostile body nests thousands of levels. */
function deeperThan(value: unknown, limit: number): boolean {
  const pending: [unknown, number][] = [[value, 1]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [item, depth] = next;
    if (typeof item !== 'object' || item === null) continue;
    if (depth > limit) return true;
    for (const child of Object.values(item)) pending.push([child, depth + 1]);
  }
  return false;
}

function integer(raw: Record<string, unknown>, name: string, min: number, max: number): number | undefined {
  const value = raw[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    throw invalid(`${name} must be an integer from ${min} to ${max}`);
  return value;
}

function conflict(options: TestTokenOptions, a: keyof TestTokenOptions, b: keyof TestTokenOptions): void {
  const set = (k: keyof TestTokenOptions) => options[k] !== undefined && options[k] !== false;
  if (set(a) && set(b)) throw invalid(`${a} and ${b} cannot be combined`);
}

function invalid(message: string) {
  return graphErrors.badRequest(`testTokens: ${message}`);
}
