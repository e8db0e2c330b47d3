/**
 * Small access-restriction and routing policies:
 *
 * - `<check-header name failed-check-httpcode failed-check-error-message ignore-case><value>…</value></check-header>`
 *   All four attributes are required (as in APIM). The header must be present and, when values
 *   are listed, equal one of them (case-insensitively with ignore-case="true").
 * - `<ip-filter action="allow|forbid"><address>…</address><address-range from to /></ip-filter>`
 *   Uses the TCP connection's address (`context.Request.IpAddress`), never X-Forwarded-For.
 *   IPv4 and IPv6. Refused callers get 403 `{"statusCode":403,"message":"Forbidden"}`.
 * - `<set-backend-service base-url="http://…" />` (inbound): the request goes to that base URL
 *   instead of the gateway's backendUrl. `backend-id` (APIM backend entities) is refused, and so
 *   is an https:// base URL (the gateway speaks plain HTTP to backends).
 */
import { BlockList, isIP } from 'node:net';
import { ApimError } from './apim-errors';
import type { PolicyContext, PolicyStatement } from './policy-context';
import { ElementReader, PolicyElement } from './policy-xml';

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export function compileCheckHeader(file: string, element: PolicyElement): PolicyStatement {
  const r = new ElementReader(file, element);
  r.allowAttributes(['id', 'name', 'failed-check-httpcode', 'failed-check-error-message', 'ignore-case']);
  r.noText();
  r.allowChildren(['value']);
  const name = r.required('name').trim().toLowerCase();
  if (!TOKEN.test(name)) throw r.error(`'${name}' is not a valid header name`);
  r.required('failed-check-httpcode');
  const status = r.integer('failed-check-httpcode', 0, 100, 599);
  const message = r.required('failed-check-error-message');
  r.required('ignore-case');
  const ignoreCase = r.boolean('ignore-case', false);
  const values = element.children.map((v) => {
    const vr = new ElementReader(file, v);
    vr.allowAttributes([]);
    vr.noChildren();
    return ignoreCase ? v.text.toLowerCase() : v.text;
  });
  return {
    name: 'check-header',
    line: element.line,
    execute(ctx: PolicyContext): void {
      const raw = ctx.request.headers[name];
      if (raw === undefined) throw new ApimError(status, message, 'check-header', 'HeaderNotFound');
      if (values.length === 0) return;
      const actual = Array.isArray(raw) ? raw.join(',') : String(raw);
      if (!values.includes(ignoreCase ? actual.toLowerCase() : actual))
        throw new ApimError(status, message, 'check-header', 'HeaderValueNotAllowed');
    },
  };
}

export function compileIpFilter(file: string, element: PolicyElement): PolicyStatement {
  const r = new ElementReader(file, element);
  r.allowAttributes(['id', 'action']);
  r.noText();
  r.allowChildren(['address', 'address-range']);
  const action = r.required('action').trim();
  if (action !== 'allow' && action !== 'forbid')
    throw r.error(`attribute action must be allow or forbid, got '${action}'`);
  if (element.children.length === 0) throw r.error('at least one <address> or <address-range> is required');
  const list = new BlockList();
  const family = (ip: string, at: ElementReader): 'ipv4' | 'ipv6' => {
    const v = isIP(ip);
    if (v === 0) throw at.error(`'${ip}' is not an IP address`);
    return v === 4 ? 'ipv4' : 'ipv6';
  };
  for (const child of element.children) {
    const c = new ElementReader(file, child);
    if (child.name === 'address') {
      c.allowAttributes([]);
      c.noChildren();
      const ip = child.text.trim();
      list.addAddress(ip, family(ip, c));
    } else {
      c.allowAttributes(['from', 'to']);
      c.noChildren();
      c.noText();
      const from = c.required('from').trim();
      const to = c.required('to').trim();
      const f = family(from, c);
      if (family(to, c) !== f) throw c.error('from and to must be of the same IP version');
      try {
        list.addRange(from, to, f);
      } catch {
        throw c.error(`'${from}'-'${to}' is not a valid range (from must not be greater than to)`);
      }
    }
  }
  return {
    name: 'ip-filter',
    line: element.line,
    execute(ctx: PolicyContext): void {
      const ip = ctx.request.clientIp;
      const v = isIP(ip);
      const listed = v !== 0 && list.check(ip, v === 4 ? 'ipv4' : 'ipv6');
      if (listed !== (action === 'allow'))
        throw new ApimError(403, 'Forbidden', 'ip-filter', 'CallerIpNotAllowed');
    },
  };
}

export function compileSetBackendService(file: string, element: PolicyElement): PolicyStatement {
  const r = new ElementReader(file, element);
  r.allowAttributes(
    ['id', 'base-url'],
    [
      'backend-id',
      'sf-partition-key',
      'sf-replica-type',
      'sf-resolve-condition',
      'sf-service-instance-name',
      'sf-listener-name',
      'dapr-app-id',
      'dapr-method',
      'dapr-namespace',
    ],
  );
  r.noChildren();
  r.noText();
  const value = r.required('base-url').trim();
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw r.error(`base-url '${value}' is not a valid URL`);
  }
  if (url.protocol !== 'http:')
    throw r.error(`base-url '${value}' must be an http:// URL (this gateway forwards over plain HTTP)`);
  if (url.search || url.hash) throw r.error(`base-url '${value}' must not have a query string or fragment`);
  return {
    name: 'set-backend-service',
    line: element.line,
    execute(ctx: PolicyContext): void {
      ctx.backendUrl = url;
    },
  };
}
