/** The guard applied to a Node.js request (node:http, node:https, Fastify's `request.raw`). */
import type { IncomingMessage } from 'node:http';
import { checkRequest, type GuardDecision, type GuardOptions, type GuardRequest } from './loopback-guard';

/**
 * The headers the guard reads, every occurrence kept: Node keeps only the first Host of a
 * request that repeats it, and a repeated Host must be refused, not silently picked from.
 */
export function guardRequestOf(req: IncomingMessage): GuardRequest {
  let host: string[] | undefined;
  let origin: string[] | undefined;
  let secFetchSite: string[] | undefined;
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const length = raw[i]!.length;
    // This runs on every request: only names of the right length are lower-cased.
    if (length !== 4 && length !== 6 && length !== 14) continue;
    const name = raw[i]!.toLowerCase();
    if (name === 'host') (host ??= []).push(raw[i + 1]!);
    else if (name === 'origin') (origin ??= []).push(raw[i + 1]!);
    else if (name === 'sec-fetch-site') (secFetchSite ??= []).push(raw[i + 1]!);
  }
  const request: GuardRequest = { host, origin, secFetchSite };
  if (req.url !== undefined) request.target = req.url;
  return request;
}

/**
 * `checkRequest` for a request a server received. The port defaults to the one the connection
 * came in on, which is the port the server listens on.
 */
export function guardIncomingMessage(req: IncomingMessage, options: NodeGuardOptions): GuardDecision {
  return decide(req, options, undefined);
}

/** How many different Host values `loopbackGuard` remembers before it starts over. */
const REMEMBERED_HOSTS = 64;

/**
 * `guardIncomingMessage` for a server's every request: the decision for a request that carries
 * one Host and neither Origin nor Sec-Fetch-Site (nearly all of them) is remembered per Host and
 * port, so the name is parsed once, not on every request. Any other request is decided afresh.
 */
export function loopbackGuard(options: NodeGuardOptions): (req: IncomingMessage) => GuardDecision {
  const remembered = new Map<string, GuardDecision>();
  return (req) => decide(req, options, remembered);
}

type NodeGuardOptions = Omit<GuardOptions, 'port'> & { port?: number };

function decide(
  req: IncomingMessage,
  options: NodeGuardOptions,
  remembered: Map<string, GuardDecision> | undefined,
): GuardDecision {
  const port = options.port ?? req.socket.localPort;
  // A connection already gone has no port: refused, never thrown from a request handler.
  if (port === undefined) return { ok: false, status: 421, reason: "the connection's port is unknown" };
  const request = guardRequestOf(req);
  const { host } = request;
  const key =
    remembered &&
    host?.length === 1 &&
    request.origin === undefined &&
    request.secFetchSite === undefined &&
    request.target?.startsWith('/')
      ? `${port} ${host[0]}`
      : undefined;
  const known = key === undefined ? undefined : remembered!.get(key);
  if (known) return known;
  const decision = checkRequest(request, { ...options, port });
  if (key !== undefined) {
    if (remembered!.size >= REMEMBERED_HOSTS) remembered!.clear();
    remembered!.set(key, decision);
  }
  return decision;
}
