/**
 * The Microsoft Graph subset served at `/graph/v1.0`: applications, service principals and
 * app role assignments, enough to reconcile APIs and partners with a topology (create, change
 * and delete registrations, grant and revoke roles) and to upload a partner's certificate
 * (steps 1 and 4 of the flow). Service principals and assignments: graph-service-principals.ts;
 * the sign-in logs, also at `/graph/beta`: graph-beta-sign-ins.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseApplicationBody } from './application-input';
import { assignmentSide } from './assignment-input';
import { GRAPH_APP_ID } from './directory';
import {
  authenticateGraphRequest,
  authorizeGraphRequest,
  hasPermission,
  type GraphPermission,
} from './graph-auth';
import { parseKeyCredentials } from './key-credentials';
import { verifyProofOfPossession } from './proof-of-possession';
import { GraphError, graphErrors } from './graph-errors';
import {
  entity,
  filterBy,
  list,
  selectOf,
  type GraphContext,
  type GraphRequest,
  type Reply,
} from './graph-route';
import { auditLogs } from './graph-beta-sign-ins';
import { servicePrincipals } from './graph-service-principals';
import { applicationView, keyCredentialView, passwordCredentialView, project } from './graph-shapes';
import { headerValue, sendEmpty, sendJson } from './http-io';
import { readGraphJson } from './graph-body';
import { isGuid } from '@certflow/claims';
import { newGuid } from './ids';
import type { StoredApplication } from './state-store';

export const GRAPH_PREFIX = '/graph/v1.0';
export const GRAPH_BETA_PREFIX = '/graph/beta';

/** True for a path of the Graph API, v1.0 or beta. */
export function isGraphPath(pathname: string): boolean {
  return [GRAPH_PREFIX, GRAPH_BETA_PREFIX].some((p) => pathname === p || pathname.startsWith(`${p}/`));
}
const BODY_LIMIT = 1024 * 1024;

export async function handleGraphRequest(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  ctx: GraphContext,
): Promise<void> {
  const requestId = newGuid();
  const clientRequestId = headerValue(req, 'client-request-id') ?? requestId;
  const headers = { 'request-id': requestId, 'client-request-id': clientRequestId };
  try {
    const method = req.method ?? 'GET';
    const beta = url.pathname === GRAPH_BETA_PREFIX || url.pathname.startsWith(`${GRAPH_BETA_PREFIX}/`);
    const prefix = beta ? GRAPH_BETA_PREFIX : GRAPH_PREFIX;
    const segments = url.pathname
      .slice(prefix.length)
      .split('/')
      .filter((s) => s !== '')
      .map((s) => safeDecode(s));
    // addKey/removeKey need no permission when an application rolls its own keys (the proof protects them).
    const selfService =
      segments.length === 3 &&
      segments[0] === 'applications' &&
      (segments[2] === 'addKey' || segments[2] === 'removeKey');
    const caller = selfService
      ? await authenticateGraphRequest(headerValue(req, 'authorization'), ctx)
      : await authorizeGraphRequest(headerValue(req, 'authorization'), permissionFor(method, segments), ctx);
    const reply = await route({
      version: beta ? 'beta' : 'v1.0',
      caller,
      method,
      segments,
      query: url.searchParams,
      graphUrl: `${ctx.baseUrl}${prefix}`,
      body: () => readGraphJson(req, BODY_LIMIT),
      ctx,
    });
    if (reply.body === undefined) sendEmpty(res, reply.status, headers);
    else sendJson(res, reply.status, reply.body, headers);
  } catch (err) {
    const graphError =
      err instanceof GraphError
        ? err
        : new GraphError(500, 'InternalServerError', 'The emulator failed to process the request.');
    if (!(err instanceof GraphError))
      console.error(`graph: unexpected error: ${(err as Error)?.stack ?? String(err)}`);
    sendJson(
      res,
      graphError.status,
      {
        error: {
          code: graphError.code,
          message: graphError.message,
          innerError: {
            date: ctx.now.toISOString().slice(0, 19),
            'request-id': requestId,
            'client-request-id': clientRequestId,
          },
        },
      },
      graphError.status === 401
        ? {
            ...headers,
            'www-authenticate': `Bearer realm="", authorization_uri="${ctx.baseUrl}/${ctx.tenantId}/oauth2/authorize", client_id="${GRAPH_APP_ID}"`,
          }
        : headers,
    );
  }
}

/** Granting and revoking app role assignments need AppRoleAssignment.ReadWrite.All, as in Graph. */
function permissionFor(method: string, segments: string[]): GraphPermission {
  if (segments[0] === 'auditLogs') return 'auditLogs';
  if (method === 'GET') return 'read';
  if (segments[0] === 'servicePrincipals' && assignmentSide(segments[2]) !== undefined)
    return method === 'DELETE' ? 'revoke' : 'assign';
  return 'write';
}

async function route(r: GraphRequest): Promise<Reply> {
  const [collection, id, action, ...extra] = r.segments;
  if (collection === undefined) throw graphErrors.unknownSegment(r.version);
  if (collection === 'auditLogs') return auditLogs(r);
  // The emulator serves under beta only what Graph has only there.
  if (r.version === 'beta') throw graphErrors.unknownSegment(collection);
  if (collection === 'servicePrincipals') return servicePrincipals(r);
  if (extra.length > 0) throw graphErrors.unknownSegment(extra[0]!);
  const byAppId = /^applications\(appId='([^']*)'\)$/.exec(collection);
  if (byAppId) {
    if (id !== undefined) throw graphErrors.unknownSegment(id);
    const app = r.ctx.directory.applicationByAppId(byAppId[1]!);
    if (!app) throw graphErrors.notFound(byAppId[1]!);
    return applications(r, app.id, undefined);
  }
  if (collection === 'applications') return applications(r, id, action);
  throw graphErrors.unknownSegment(collection);
}

async function applications(
  r: GraphRequest,
  id: string | undefined,
  action: string | undefined,
): Promise<Reply> {
  const { directory } = r.ctx;
  const select = selectOf(r.query);
  const context = `${r.graphUrl}/$metadata#applications`;
  if (id === undefined) {
    if (r.method === 'GET') {
      const filtered = filterBy(r.query, directory.applications(), ['appId', 'displayName']);
      return list(
        context,
        filtered.map((a) => project(applicationView(a, false), select)),
      );
    }
    if (r.method === 'POST') {
      const app = directory.createApplication(parseApplicationBody(await r.body(), undefined));
      return entity(context, 201, applicationView(app, false));
    }
    throw graphErrors.methodNotAllowed();
  }
  const app = directory.application(id);
  if (!app) throw graphErrors.notFound(id);
  if (r.method !== 'GET' && app.appId === directory.state.adminAppId) throw adminApplicationChange(app);
  if (action === 'addPassword') {
    if (r.method !== 'POST') throw graphErrors.methodNotAllowed();
    const body = (await r.body()) as {
      passwordCredential?: { displayName?: unknown; endDateTime?: unknown };
    } | null;
    const input = body?.passwordCredential ?? {};
    if (
      input.displayName !== undefined &&
      input.displayName !== null &&
      typeof input.displayName !== 'string'
    ) {
      throw graphErrors.badRequest("Property 'displayName' must be a string.");
    }
    if (input.endDateTime !== undefined && typeof input.endDateTime !== 'string')
      throw graphErrors.badRequest("Property 'endDateTime' must be a date.");
    const created = directory.addPassword(app.id, {
      displayName: (input.displayName as string | null | undefined) ?? null,
      ...(input.endDateTime ? { endDateTime: input.endDateTime } : {}),
    });
    return {
      status: 200,
      body: {
        '@odata.context': `${r.graphUrl}/$metadata#microsoft.graph.passwordCredential`,
        ...passwordCredentialView(created.credential, created.secretText),
      },
    };
  }
  if (action === 'removePassword') {
    if (r.method !== 'POST') throw graphErrors.methodNotAllowed();
    const body = (await r.body()) as { keyId?: unknown } | null;
    if (!isGuid(body?.keyId))
      throw graphErrors.badRequest("Property 'keyId' is required and must be a GUID.");
    directory.removePassword(app.id, body.keyId);
    return { status: 204 };
  }
  if (action === 'addKey' || action === 'removeKey') return rollKey(r, app, action);
  if (action !== undefined) throw graphErrors.unknownSegment(action);
  if (r.method === 'GET') {
    const includeKeys = select?.includes('keyCredentials') ?? false;
    return entity(context, 200, project(applicationView(app, includeKeys), select));
  }
  if (r.method === 'PATCH') {
    directory.updateApplication(app.id, parseApplicationBody(await r.body(), app));
    return { status: 204 };
  }
  if (r.method === 'DELETE') {
    directory.deleteApplication(app.id);
    return { status: 204 };
  }
  throw graphErrors.methodNotAllowed();
}

/**
 * Every Graph change to the emulator's own admin application (PATCH, DELETE, addPassword,
 * removePassword, addKey, removeKey) is refused, although Microsoft Graph allows them: its
 * secret is the one in emulator.json that every Graph and admin call depends on, and a caller
 * with Application.ReadWrite.All could otherwise give itself the admin's identity or lock
 * everyone out.
 */
function adminApplicationChange(app: StoredApplication): GraphError {
  return graphErrors.badRequest(
    `'${app.displayName}' is the emulator's own admin application: the emulator refuses every Graph change to it (its credentials, tags, roles, URIs or the application itself). Its client secret is managed by the emulator and written to emulator.json in the state directory; to get a new one, stop the emulator, delete emulator.json and start it again.`,
  );
}

/**
 * `addKey` / `removeKey`: as in Microsoft Graph, an application may roll its own certificates
 * with a token it obtained itself and no permission at all; anyone else needs
 * Application.ReadWrite.All. Either way the proof must be signed by a valid registered certificate.
 */
async function rollKey(
  r: GraphRequest,
  app: StoredApplication,
  action: 'addKey' | 'removeKey',
): Promise<Reply> {
  if (r.method !== 'POST') throw graphErrors.methodNotAllowed();
  if (r.caller.appId !== app.appId && !hasPermission(r.caller, 'write')) throw graphErrors.forbidden();
  const body = await r.body();
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw graphErrors.badRequest('The request body must be a JSON object.');
  const input = body as Record<string, unknown>;
  const allowed = action === 'addKey' ? ['keyCredential', 'passwordCredential', 'proof'] : ['keyId', 'proof'];
  const unknown = Object.keys(input).find((k) => !allowed.includes(k));
  if (unknown !== undefined)
    throw graphErrors.badRequest(
      `Property '${unknown.slice(0, 60)}' does not exist as a declared property or extension property.`,
    );
  const { directory } = r.ctx;
  if (action === 'addKey') {
    if (input.passwordCredential !== undefined && input.passwordCredential !== null) {
      throw graphErrors.badRequest(
        'This emulator supports addKey for certificates only; passwordCredential must be null.',
      );
    }
    if (typeof input.keyCredential !== 'object' || input.keyCredential === null)
      throw graphErrors.badRequest("Property 'keyCredential' is required.");
    // Validated before the proof so that a bad certificate is reported as such.
    const [credential] = parseKeyCredentials([input.keyCredential], []);
    await verifyProofOfPossession(input.proof, app, r.ctx.now, r.ctx.clockSkewSeconds);
    const added = directory.addKeyCredential(app.id, credential!);
    return {
      status: 200,
      body: {
        '@odata.context': `${r.graphUrl}/$metadata#microsoft.graph.keyCredential`,
        ...keyCredentialView(added, false),
      },
    };
  }
  if (!isGuid(input.keyId)) throw graphErrors.badRequest("Property 'keyId' is required and must be a GUID.");
  await verifyProofOfPossession(input.proof, app, r.ctx.now, r.ctx.clockSkewSeconds);
  directory.removeKeyCredential(app.id, input.keyId);
  return { status: 204 };
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
