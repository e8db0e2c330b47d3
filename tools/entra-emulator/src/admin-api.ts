/**
 * The emulator's own admin API at `/admin` (not part of Microsoft Graph): signing-key
 * rotation, and the routes emulator.ts adds (fault injection, the clock, test tokens).
 * Authenticated like the Graph API, before any body is read: a bearer token this emulator's token
 * endpoint issued for `https://graph.microsoft.com` with `Application.ReadWrite.All`
 * (`Application.Read.All` is enough for GETs), and only to the admin client of emulator.json:
 * this API is the emulator's own, not Graph's, so another application holding the same Graph
 * permissions gets 403 (it could otherwise mint itself test tokens or move the clock).
 * Minted test tokens are refused (graph-auth.ts). Errors use Graph's shape.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { authorizeGraphRequest, type GraphAuthContext, type GraphCaller } from './graph-auth';
import { GraphError, graphErrors } from './graph-errors';
import { headerValue, sendJson } from './http-io';
import { readGraphJson } from './graph-body';
import { newGuid } from './ids';
import type { StoredSigningKey } from './state-store';

export const ADMIN_PREFIX = '/admin';
const BODY_LIMIT = 64 * 1024;

export interface AdminContext extends GraphAuthContext {
  storedSigningKeys: () => readonly StoredSigningKey[];
  rotateSigningKey: () => Promise<{ kid: string }>;
  /** Extra routes (`faults`, `clock`, `clock/advance`, `testTokens`), keyed by their path after /admin. */
  routes?: Record<string, AdminRoute>;
  /** The admin client (emulator.json's `admin.clientId`): the only caller the admin API serves. */
  adminAppId: string;
}

export type AdminRoute = (
  method: string,
  body: () => Promise<unknown>,
  /** The authenticated caller (handleAdminRequest always gives it). */
  caller?: GraphCaller,
) => Promise<{ status: number; body: Record<string, unknown> }>;

export async function handleAdminRequest(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  ctx: AdminContext,
): Promise<void> {
  const requestId = newGuid();
  const headers = { 'request-id': requestId };
  try {
    const method = req.method ?? 'GET';
    const caller = await authorizeGraphRequest(
      headerValue(req, 'authorization'),
      method === 'GET' ? 'read' : 'write',
      ctx,
    );
    if (caller.appId !== ctx.adminAppId.toLowerCase()) throw notTheAdminClient();
    const segments = url.pathname
      .slice(ADMIN_PREFIX.length)
      .split('/')
      .filter((s) => s !== '');
    const reply = await route(method, segments, () => readGraphJson(req, BODY_LIMIT), caller, ctx);
    sendJson(res, reply.status, reply.body, headers);
  } catch (err) {
    const error =
      err instanceof GraphError
        ? err
        : new GraphError(500, 'InternalServerError', 'The emulator failed to process the request.');
    if (!(err instanceof GraphError))
      console.error(`admin: unexpected error: ${(err as Error)?.stack ?? String(err)}`);
    sendJson(
      res,
      error.status,
      { error: { code: error.code, message: error.message, innerError: { 'request-id': requestId } } },
      headers,
    );
  }
}

async function route(
  method: string,
  segments: string[],
  body: () => Promise<unknown>,
  caller: GraphCaller,
  ctx: AdminContext,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const [first, second, ...rest] = segments;
  if (first === 'signingKeys' && rest.length === 0) {
    if (second === undefined) {
      if (method !== 'GET') throw graphErrors.methodNotAllowed();
      return { status: 200, body: { value: signingKeysView(ctx.storedSigningKeys(), ctx.now) } };
    }
    if (second === 'rotate') {
      if (method !== 'POST') throw graphErrors.methodNotAllowed();
      const { kid } = await ctx.rotateSigningKey();
      return { status: 200, body: { kid, value: signingKeysView(ctx.storedSigningKeys(), ctx.now) } };
    }
  }
  const path = segments.join('/');
  // Own keys only: `/admin/constructor` must not reach Object's constructor.
  const extra = ctx.routes && Object.hasOwn(ctx.routes, path) ? ctx.routes[path] : undefined;
  if (extra) return extra(method, body, caller);
  throw graphErrors.unknownSegment(segments.join('/').slice(0, 100) || 'admin');
}

/** The keys and their roles; the private keys never leave the state file. */
function signingKeysView(keys: readonly StoredSigningKey[], now: Date): Record<string, unknown>[] {
  return keys
    .filter((k) => k.use !== 'retired' || (k.retireAfter !== undefined && new Date(k.retireAfter) > now))
    .map((k) => ({
      kid: k.kid,
      use: k.use ?? null,
      createdDateTime: k.createdDateTime,
      retireAfter: k.retireAfter ?? null,
    }));
}

/** 403 for an application other than the admin client, whatever Graph permissions it holds. */
export function notTheAdminClient(): GraphError {
  return new GraphError(
    403,
    'Authorization_RequestDenied',
    "The emulator's admin API serves only the admin client of emulator.json (admin.clientId); Graph permissions held by another application do not grant it.",
  );
}
