/** The guard applied to a Node.js request (node:http, node:https, Fastify's `request.raw`). */
import type { IncomingMessage } from 'node:http';
import { checkRequest, type GuardDecision, type GuardOptions, type GuardRequest } from './loopback-guard';

/**
 * The headers the guard reads, every occurrence kept: Node keeps only the first Host of a
 * request that repeats it, and a repeated Host must be refused, not silently picked from.
 */
export function guardRequestOf(req: IncomingMessage): GuardRequest {
  const seen: Record<'host' | 'origin' | 'sec-fetch-site', string[]> = {
    host: [],
    origin: [],
    'sec-fetch-site': [],
  };
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    if (name === 'host' || name === 'origin' || name === 'sec-fetch-site')
      seen[name].push(req.rawHeaders[i + 1]!);
  }
  const value = (values: string[]) => (values.length === 0 ? undefined : values);
  return {
    host: value(seen.host),
    origin: value(seen.origin),
    secFetchSite: value(seen['sec-fetch-site']),
    ...(req.url === undefined ? {} : { target: req.url }),
  };
}

/**
 * `checkRequest` for a request a server received. The port defaults to the one the connection
 * came in on, which is the port the server listens on.
 */
export function guardIncomingMessage(
  req: IncomingMessage,
  options: Omit<GuardOptions, 'port'> & { port?: number },
): GuardDecision {
  const port = options.port ?? req.socket.localPort;
  // A connection already gone has no port: refused, never thrown from a request handler.
  if (port === undefined) return { ok: false, status: 421, reason: "the connection's port is unknown" };
  return checkRequest(guardRequestOf(req), { ...options, port });
}
