/**
 * `GET /auditLogs/signIns` and `/auditLogs/signIns/{id}`: the sign-in log (sign-in-log.ts) as
 * Microsoft Graph serves it. Service-principal sign-ins exist only in the beta version, and only
 * under the filter `signInEventTypes/any(t: t eq 'servicePrincipal')`: without a
 * `signInEventTypes` clause Graph lists interactive user sign-ins, of which the emulator has none.
 * v1.0 has no service-principal sign-ins at all (and no `signInEventTypes` property).
 *
 * `$filter`: clauses joined with `and` (parentheses allowed) of `signInEventTypes/any(t: t eq|ne
 * '…')`, `status/errorCode eq|ne N`, `createdDateTime eq|ge|gt|le|lt <date>`, `<property> eq
 * '…'` and `startsWith(<property>, '…')`. Anything else is refused with Graph's 400, never ignored.
 */
import { isGuid } from '@certflow/claims';
import { GraphError, graphErrors } from './graph-errors';
import { entity, list, selectOf, type GraphRequest, type Reply } from './graph-route';
import { project } from './graph-shapes';
import { signInView } from './sign-in-log';

/** Graph's maximum and default page size for sign-ins. */
const PAGE_SIZE = 1000;
const EQ_PROPERTIES = [
  'id',
  'appId',
  'appDisplayName',
  'correlationId',
  'ipAddress',
  'resourceDisplayName',
  'resourceId',
  'servicePrincipalId',
  'servicePrincipalName',
];
const STARTS_WITH_PROPERTIES = ['appDisplayName', 'ipAddress', 'servicePrincipalId', 'servicePrincipalName'];
const QUERY_OPTIONS = ['$filter', '$top', '$skiptoken', '$select', '$orderby'];

type View = Record<string, unknown>;
type Predicate = (view: View) => boolean;

export function auditLogs(r: GraphRequest): Reply {
  const [, collection, id, ...extra] = r.segments;
  if (collection === undefined) {
    if (r.method !== 'GET') throw graphErrors.methodNotAllowed();
    return { status: 200, body: { '@odata.context': `${r.graphUrl}/$metadata#auditLogs/$entity` } };
  }
  if (collection !== 'signIns') throw graphErrors.unknownSegment(collection);
  if (extra.length > 0) throw graphErrors.unknownSegment(extra[0]!);
  if (r.method !== 'GET') throw graphErrors.methodNotAllowed();
  const context = `${r.graphUrl}/$metadata#auditLogs/signIns`;
  const beta = r.version === 'beta';
  // v1.0 lists user sign-ins only: none here.
  const entries = beta
    ? [...r.ctx.signInLog.newestFirst()].map((record) => ({
        seq: record.seq,
        view: signInView(record, r.ctx.tenantId),
      }))
    : [];
  if (id !== undefined) {
    const found = entries.find((e) => e.view.id === id.toLowerCase());
    if (!found) throw graphErrors.notFound(id);
    return entity(context, 200, project(found.view, selectOf(r.query)));
  }
  return listSignIns(r, context, entries, beta);
}

function listSignIns(
  r: GraphRequest,
  context: string,
  entries: { seq: number; view: View }[],
  beta: boolean,
): Reply {
  for (const name of r.query.keys())
    if (name.startsWith('$') && !QUERY_OPTIONS.includes(name))
      throw graphErrors.badRequest(
        `Query option '${name.slice(0, 40)}' is not supported on auditLogs/signIns by this emulator.`,
      );
  const orderBy = r.query.get('$orderby');
  if (orderBy !== null && !/^\s*createdDateTime\s+desc\s*$/.test(orderBy))
    throw graphErrors.badRequest(
      `$orderby '${orderBy.slice(0, 100)}' is not supported by this emulator: sign-ins are listed newest first (createdDateTime desc).`,
    );
  const top = pageSize(r.query.get('$top'));
  const after = skipToken(r.query.get('$skiptoken'));
  const filter = r.query.get('$filter');
  const { predicates, eventTypes } =
    filter === null ? { predicates: [], eventTypes: false } : parseFilter(filter, beta);
  // Without a signInEventTypes clause Graph lists interactive user sign-ins only.
  if (!eventTypes) predicates.push((v) => (v.signInEventTypes as string[]).includes('interactiveUser'));
  const select = selectOf(r.query);
  const page: View[] = [];
  let last: number | undefined;
  let more = false;
  for (const { seq, view } of entries) {
    if (after !== undefined && seq >= after) continue;
    if (!predicates.every((p) => p(view))) continue;
    if (page.length === top) {
      more = true;
      break;
    }
    page.push(project(view, select));
    last = seq;
  }
  const reply = list(context, page);
  if (more && last !== undefined) {
    const next = new URLSearchParams(r.query);
    next.set('$skiptoken', String(last));
    reply.body!['@odata.nextLink'] = `${r.graphUrl}/auditLogs/signIns?${next.toString()}`;
  }
  return reply;
}

function pageSize(text: string | null): number {
  if (text === null) return PAGE_SIZE;
  const n = /^\d{1,7}$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!(n >= 1 && n <= PAGE_SIZE))
    throw graphErrors.badRequest(
      `Invalid page size specified: '${text.slice(0, 20)}'. Must be between 1 and ${PAGE_SIZE}.`,
    );
  return n;
}

function skipToken(text: string | null): number | undefined {
  if (text === null) return undefined;
  if (!/^[1-9]\d{0,15}$/.test(text)) throw graphErrors.badRequest('The $skiptoken is not valid.');
  return Number(text);
}

/** The filter's predicates, and whether it names `signInEventTypes`. */
export function parseFilter(filter: string, beta: boolean): { predicates: Predicate[]; eventTypes: boolean } {
  const predicates: Predicate[] = [];
  let eventTypes = false;
  const visit = (text: string): void => {
    for (const clause of splitAnd(text, filter)) {
      const inner = unwrapParentheses(clause);
      if (inner !== undefined) {
        visit(inner);
        continue;
      }
      const parsed = parseClause(clause, beta);
      if (parsed.eventTypes) eventTypes = true;
      predicates.push(parsed.predicate);
    }
  };
  visit(filter);
  return { predicates, eventTypes };
}

/** Top-level clauses of `a and b and (c and d)`: `and` outside quotes and parentheses. */
function splitAnd(text: string, whole: string): string[] {
  const clauses: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'")
      quoted = !quoted; // '' inside a string toggles twice: still quoted
    else if (quoted) continue;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (depth === 0 && /\s/.test(c)) {
      const and = /^\s+and\s+/.exec(text.slice(i));
      if (and) {
        clauses.push(text.slice(start, i));
        i += and[0].length - 1;
        start = i + 1;
      }
    }
    if (depth < 0) throw unsupported(whole);
  }
  if (quoted || depth !== 0) throw unsupported(whole);
  clauses.push(text.slice(start));
  const trimmed = clauses.map((c) => c.trim());
  if (trimmed.includes('')) throw unsupported(whole);
  return trimmed;
}

/** `( … )` around the whole clause: its inside; else undefined. */
function unwrapParentheses(clause: string): string | undefined {
  if (!clause.startsWith('(') || !clause.endsWith(')')) return undefined;
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < clause.length; i++) {
    const c = clause[i]!;
    if (c === "'") quoted = !quoted;
    else if (quoted) continue;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0 && i < clause.length - 1) return undefined;
  }
  return clause.slice(1, -1);
}

const STRING = "'((?:[^']|'')*)'";
const unquote = (s: string) => s.replace(/''/g, "'");

function parseClause(clause: string, beta: boolean): { predicate: Predicate; eventTypes?: boolean } {
  let m = new RegExp(
    `^signInEventTypes/any\\(\\s*(\\w+)\\s*:\\s*(\\w+)\\s+(eq|ne)\\s+${STRING}\\s*\\)$`,
  ).exec(clause);
  if (m) {
    if (!beta) throw noProperty('signInEventTypes');
    if (m[1] !== m[2]) throw unsupportedClause(clause);
    const [value, eq] = [unquote(m[4]!), m[3] === 'eq'];
    return {
      eventTypes: true,
      predicate: (v) => (v.signInEventTypes as string[]).some((t) => (t === value) === eq),
    };
  }
  m = /^status\/errorCode\s+(eq|ne)\s+(-?\d{1,10})$/.exec(clause);
  if (m) {
    const [code, eq] = [Number(m[2]), m[1] === 'eq'];
    return { predicate: (v) => ((v.status as { errorCode: number }).errorCode === code) === eq };
  }
  m =
    /^createdDateTime\s+(eq|ge|gt|le|lt)\s+(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2}))$/.exec(
      clause,
    );
  if (m) {
    const at = Date.parse(m[2]!);
    if (Number.isNaN(at)) throw unsupportedClause(clause);
    const op = m[1]!;
    return {
      predicate: (v) => {
        const t = Date.parse(v.createdDateTime as string);
        return op === 'eq'
          ? t === at
          : op === 'ge'
            ? t >= at
            : op === 'gt'
              ? t > at
              : op === 'le'
                ? t <= at
                : t < at;
      },
    };
  }
  m = new RegExp(`^(\\w+)\\s+eq\\s+${STRING}$`).exec(clause);
  if (m && EQ_PROPERTIES.includes(m[1]!)) {
    const [property, value] = [m[1]!, unquote(m[2]!)];
    const ignoreCase = isGuid(value); // ids are GUIDs, whatever their case
    return {
      predicate: (v) => {
        const actual = String(v[property]);
        return ignoreCase ? actual.toLowerCase() === value.toLowerCase() : actual === value;
      },
    };
  }
  m = new RegExp(`^startsWith\\(\\s*(\\w+)\\s*,\\s*${STRING}\\s*\\)$`, 'i').exec(clause);
  if (m && STARTS_WITH_PROPERTIES.includes(m[1]!)) {
    const [property, prefix] = [m[1]!, unquote(m[2]!).toLowerCase()];
    return { predicate: (v) => String(v[property]).toLowerCase().startsWith(prefix) };
  }
  throw unsupportedClause(clause);
}

function unsupportedClause(clause: string): GraphError {
  return graphErrors.unsupportedFilter(clause.slice(0, 200));
}

function unsupported(filter: string): GraphError {
  return graphErrors.unsupportedFilter(filter.slice(0, 200));
}

function noProperty(name: string): GraphError {
  return new GraphError(
    400,
    'BadRequest',
    `Could not find a property named '${name}' on type 'microsoft.graph.signIn'.`,
  );
}
