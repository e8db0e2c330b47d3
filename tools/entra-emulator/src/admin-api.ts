/**
 * The emulator's own admin API at `/admin` (not part of Microsoft Graph): signing-key
 * rotation, and the routes emulator.ts adds (fault injection, the clock, test tokens).
 * Authenticated like the Graph API, before any body is read: a bearer token this emulator
 * issued for `https://graph.microsoft.com` with `Application.ReadWrite.All`
 * (`Application.Read.All` is enough for GETs), i.e. the admin client in emulator.json.
 * Errors use Graph's shape.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { authorizeGraphRequest, type GraphAuthContext } from './graph-auth';
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
}

export type AdminRoute = (
  method: string,
  body: () => Promise<unknown>,
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
    await authorizeGraphRequest(headerValue(req, 'authorization'), method === 'GET' ? 'read' : 'write', ctx);
    const segments = url.pathname
      .slice(ADMIN_PREFIX.length)
      .split('/')
      .filter((s) => s !== '');
    const reply = await route(method, segments, () => readGraphJson(req, BODY_LIMIT), ctx);
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
  if (extra) return extra(method, body);
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
