/**
 * Decides whether a request to a local certflow service may proceed, from its Host, Origin and
 * Sec-Fetch-Site headers (README.md: the rules and why — DNS rebinding and cross-site requests).
 */
import { isIP, isIPv6 } from 'node:net';

export type Scheme = 'http' | 'https';

export interface GuardOptions {
  /** The port the service listens on (1–65535). */
  port: number;
  scheme: Scheme;
  /** Names accepted besides the loopback names (see `parseAllowedHosts`), lower case, no port. */
  allowedHosts?: readonly string[];
  /**
   * Whether the server listens on a loopback address only. A server reachable from the network
   * is reached under names it cannot know: without `allowedHosts` its Host name is not checked
   * (its port and the Origin still are).
   */
  boundToLoopback: boolean;
}

/** What the decision is made from. A header given more than once is passed as an array. */
export interface GuardRequest {
  host: string | readonly string[] | undefined;
  origin?: string | readonly string[] | undefined;
  secFetchSite?: string | readonly string[] | undefined;
  /** The request target (`req.url`): an absolute-form target's authority is checked like Host. */
  target?: string;
}

export type GuardDecision = { ok: true } | { ok: false; status: 421 | 403; reason: string };

/** The names a loopback service answers to, whatever is configured. */
export const LOOPBACK_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '[::1]'];

const DEFAULT_PORT: Record<Scheme, number> = { http: 80, https: 443 };

/** A configured name list that cannot be used; nothing should start with it. */
export class AllowedHostsError extends Error {
  override readonly name = 'AllowedHostsError';
  readonly code = 'ERR_ALLOWED_HOSTS_INVALID';
}

interface Authority {
  /** Lower case; an IPv6 address keeps its brackets. */
  name: string;
  port: number | undefined;
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A DNS name or IPv4 address (dotted labels, no trailing dot), or a bracketed IPv6 address. */
function validName(name: string): boolean {
  if (name.startsWith('[')) return name.endsWith(']') && isIPv6(name.slice(1, -1));
  return name.length <= 253 && name.split('.').every((label) => LABEL.test(label));
}

/** `name[:port]` exactly as RFC 9110 allows in Host (no userinfo, path, spaces or empty port); undefined if malformed. */
function parseAuthority(value: string): Authority | undefined {
  const match = /^(\[[^\]]*\]|[^:[\]]*)(?::([1-9][0-9]{0,4}))?$/.exec(value);
  if (!match) return undefined;
  const name = match[1]!.toLowerCase();
  const port = match[2] === undefined ? undefined : Number(match[2]);
  if (!validName(name) || (port !== undefined && port > 65535)) return undefined;
  return { name, port };
}

function single(value: string | readonly string[] | undefined): string | undefined | null {
  if (typeof value === 'string' || value === undefined) return value;
  if (value.length === 0) return undefined;
  return value.length === 1 ? value[0]! : null; // null: given more than once
}

function shown(value: string): string {
  return JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}…` : value);
}

function refuse(status: 421 | 403, reason: string): GuardDecision {
  return { ok: false, status, reason };
}

/**
 * Checks an authority (Host, or an absolute-form target's) against the service: a known name,
 * and the service's port (left out only when the service is on the scheme's default port).
 */
function checkAuthority(what: string, raw: string, options: GuardOptions): GuardDecision {
  const authority = parseAuthority(raw);
  if (!authority) return refuse(421, `${what} ${shown(raw)} is not a valid host[:port]`);
  const names = options.allowedHosts ?? [];
  const checkName = options.boundToLoopback || names.length > 0;
  if (checkName && !LOOPBACK_HOSTS.includes(authority.name) && !names.includes(authority.name))
    return refuse(
      421,
      `${what} ${shown(raw)} is not a name of this service (${[...LOOPBACK_HOSTS, ...names].join(', ')})`,
    );
  const port = authority.port ?? DEFAULT_PORT[options.scheme];
  if (port !== options.port)
    return refuse(421, `${what} ${shown(raw)} does not name this service's port ${options.port}`);
  return { ok: true };
}

/** The decision for one request. Pure: the same request and options always give the same answer. */
export function checkRequest(request: GuardRequest, options: GuardOptions): GuardDecision {
  if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535)
    throw new RangeError(`checkRequest: port must be an integer from 1 to 65535, got ${options.port}`);
  if (options.scheme !== 'http' && options.scheme !== 'https')
    throw new RangeError(`checkRequest: scheme must be http or https, got ${String(options.scheme)}`);

  const host = single(request.host);
  if (host === undefined) return refuse(421, 'the Host header is required');
  if (host === null) return refuse(421, 'the Host header was given more than once');
  const hostDecision = checkAuthority('Host', host, options);
  if (!hostDecision.ok) return hostDecision;

  const target = request.target;
  if (target !== undefined && !target.startsWith('/') && target !== '*') {
    // Absolute form: a server must use the target's authority instead of Host (RFC 9112 §3.2.2).
    const match = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)/i.exec(target);
    if (!match || match[1]!.toLowerCase() !== options.scheme)
      return refuse(421, `the request target ${shown(target)} is not for this service`);
    const targetDecision = checkAuthority('the request target authority', match[2]!, options);
    if (!targetDecision.ok) return targetDecision;
  }

  const site = request.secFetchSite;
  const sites = site === undefined ? [] : typeof site === 'string' ? [site] : site;
  // same-site includes the other ports of localhost: another local service's page is not this one.
  const foreign = sites.find((s) => !['same-origin', 'none'].includes(s.trim().toLowerCase()));
  if (foreign !== undefined)
    return refuse(403, `Sec-Fetch-Site ${shown(foreign)}: only same-origin requests are accepted`);

  const origin = single(request.origin);
  if (origin === undefined) return { ok: true }; // not sent by non-browser clients
  if (origin === null) return refuse(403, 'the Origin header was given more than once');
  const match = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(origin);
  const from = match ? parseAuthority(match[2]!) : undefined;
  const sameOrigin =
    match !== null &&
    from !== undefined &&
    match[1]!.toLowerCase() === options.scheme &&
    from.name === parseAuthority(host)!.name &&
    (from.port ?? DEFAULT_PORT[options.scheme]) === options.port;
  if (!sameOrigin) return refuse(403, `Origin ${shown(origin)} is not this service's origin`);
  return { ok: true };
}

/**
 * Reads a configured list of extra names (comma-separated, or an array): each a DNS name, an
 * IPv4 address or a bracketed IPv6 address, without port, wildcard or trailing dot. Returns
 * them lower case; throws AllowedHostsError naming the first unusable entry.
 */
export function parseAllowedHosts(value: string | readonly string[]): string[] {
  const entries = typeof value === 'string' ? (value.trim() === '' ? [] : value.split(',')) : [...value];
  return [
    ...new Set(
      entries.map((entry) => {
        const name = typeof entry === 'string' ? entry.trim().toLowerCase() : '';
        if (!validName(name))
          throw new AllowedHostsError(
            `allowed host ${shown(String(entry))} is not a host name or IP address (no port, wildcard or trailing dot; IPv6 in brackets)`,
          );
        return name;
      }),
    ),
  ];
}

/** True for an address (or `localhost`) that only this machine can reach: 127.0.0.0/8, ::1. */
export function isLoopbackAddress(address: string): boolean {
  const bare = address.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost' || bare === '::1' || bare === '0:0:0:0:0:0:0:1') return true;
  const v4 = bare.startsWith('::ffff:') ? bare.slice(7) : bare;
  return isIP(v4) === 4 && v4.startsWith('127.');
}
