/**
 * Bearer tokens for the Graph-shaped API: only tokens this emulator issued for Microsoft
 * Graph, carrying the app roles (application permissions) the operation needs, are accepted.
 */
import { jwtVerify, errors as joseErrors } from 'jose';
import { v1Issuer, v2Issuer } from './access-tokens';
import { GRAPH_APP_ID, GRAPH_RESOURCE } from './directory';
import { graphErrors } from './graph-errors';
import type { SigningKey } from './signing-keys';

/** The claim every minted test token carries (test-tokens.ts). */
export const TEST_TOKEN_CLAIM = 'certflow_test';

/**
 * What an operation does: `read` applications, service principals and assignments; `write`
 * applications and service principals; `assign` or `revoke` app role assignments; read the
 * sign-in logs (`auditLogs`).
 */
export type GraphPermission = 'read' | 'write' | 'assign' | 'revoke' | 'auditLogs';

export interface GraphAuthContext {
  signingKeys: SigningKey[];
  baseUrl: string;
  tenantId: string;
  now: Date;
  clockSkewSeconds: number;
}

/**
 * As Microsoft Graph documents them: each operation needs every role of one of its sets.
 * Application.ReadWrite.All alone does not grant or revoke app role assignments.
 */
const ROLES_FOR: Record<GraphPermission, string[][]> = {
  read: [['Application.Read.All'], ['Application.ReadWrite.All']],
  write: [['Application.ReadWrite.All']],
  assign: [
    ['AppRoleAssignment.ReadWrite.All', 'Application.Read.All'],
    ['AppRoleAssignment.ReadWrite.All', 'Application.ReadWrite.All'],
  ],
  revoke: [['AppRoleAssignment.ReadWrite.All']],
  auditLogs: [['AuditLog.Read.All']],
};

export interface GraphCaller {
  /** The client application that obtained the token (`azp` in v2, `appid` in v1). */
  appId: string | undefined;
  roles: string[];
}

export async function authorizeGraphRequest(
  authorization: string | undefined,
  permission: GraphPermission,
  ctx: GraphAuthContext,
): Promise<GraphCaller> {
  const caller = await authenticateGraphRequest(authorization, ctx);
  if (!hasPermission(caller, permission)) throw graphErrors.forbidden();
  return caller;
}

export function hasPermission(caller: GraphCaller, permission: GraphPermission): boolean {
  return ROLES_FOR[permission].some((set) => set.every((role) => caller.roles.includes(role)));
}

/** A valid Graph token issued by this emulator, whatever roles it carries. */
export async function authenticateGraphRequest(
  authorization: string | undefined,
  ctx: GraphAuthContext,
): Promise<GraphCaller> {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (!match) throw graphErrors.noToken();
  let roles: unknown;
  let appId: unknown;
  try {
    const { payload } = await jwtVerify(
      match[1]!,
      (header) => {
        const key = ctx.signingKeys.find((k) => k.kid === header.kid);
        if (!key) throw new joseErrors.JWKSNoMatchingKey();
        return key.publicKey;
      },
      {
        algorithms: ['RS256'],
        issuer: [v1Issuer(ctx.tenantId), v2Issuer(ctx.baseUrl, ctx.tenantId)],
        audience: [GRAPH_RESOURCE, `${GRAPH_RESOURCE}/`, GRAPH_APP_ID],
        currentDate: ctx.now,
        clockTolerance: ctx.clockSkewSeconds,
        requiredClaims: ['exp', 'tid'],
      },
    );
    if (payload.tid !== ctx.tenantId) throw graphErrors.badToken('Invalid tenant.');
    if (payload[TEST_TOKEN_CLAIM] !== undefined) throw testTokenRefused();
    roles = payload.roles;
    appId = payload.azp ?? payload.appid;
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired)
      throw graphErrors.badToken('Lifetime validation failed, the token is expired.');
    if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'aud')
      throw graphErrors.badToken('Invalid audience.');
    if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'iss')
      throw graphErrors.badToken('Invalid issuer.');
    if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'nbf')
      throw graphErrors.badToken(
        `Lifetime validation failed, the token is not yet valid (nbf ${nbfOf(err)}).`,
      );
    if (err instanceof Error && err.name === 'GraphError') throw err;
    throw graphErrors.badToken('Invalid signature.');
  }
  return {
    appId: typeof appId === 'string' ? appId.toLowerCase() : undefined,
    roles: Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : [],
  };
}

/**
 * A minted test token is never a credential for the emulator itself: anyone allowed to mint could
 * otherwise give itself any Graph permission, or keep a token that outlives the admin secret.
 */
function testTokenRefused() {
  return graphErrors.badToken(
    `The token is a test token (${TEST_TOKEN_CLAIM}): test tokens are for the caller's own APIs, not for the emulator's Graph or admin API. Use a token from the token endpoint.`,
  );
}

function nbfOf(err: InstanceType<typeof joseErrors.JWTClaimValidationFailed>): string {
  const nbf = err.payload.nbf;
  return typeof nbf === 'number' ? new Date(nbf * 1000).toISOString() : String(nbf);
}
