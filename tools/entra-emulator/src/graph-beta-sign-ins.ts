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
 * In beta the `$` of a query option is optional (`filter=` is `$filter=`), as in Graph; an option
 * given twice, or a `$select` naming no property of `signIn`, is refused too.
 *
 * The filter is applied to the log's records, and views are built only for the page answered,
 * so `$top=1` or a GET by id costs little however full the log is.
 */
import { isGuid } from '@certflow/claims';
import { GraphError, graphErrors } from './graph-errors';
import { entity, list, type GraphRequest, type Reply } from './graph-route';
import { project } from './graph-shapes';
import {
  SIGN_IN_EVENT_TYPES,
  SIGN_IN_PROPERTIES,
  SIGN_IN_TEXT_PROPERTIES,
  signInView,
  type SignInRecord,
} from './sign-in-log';

/** Graph's maximum and default page size for sign-ins. */
const PAGE_SIZE = 1000;
const STARTS_WITH_PROPERTIES = ['appDisplayName', 'ipAddress', 'servicePrincipalId', 'servicePrincipalName'];
const QUERY_OPTIONS = ['filter', 'top', 'skiptoken', 'select', 'orderby'] as const;
type QueryOption = (typeof QUERY_OPTIONS)[number];
/** Parentheses nested deeper than this are refused (a filter needs a few levels at most). */
const MAX_FILTER_NESTING = 32;

type Predicate = (record: SignInRecord) => boolean;

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
  const options = queryOptions(r.query, beta);
  const select = selectOf(options.get('select'));
  // v1.0 lists user sign-ins only: none here.
  const records: Iterable<SignInRecord> = beta ? r.ctx.signInLog.newestFirst() : [];
  if (id !== undefined) {
    const wanted = id.toLowerCase();
    for (const record of records)
      if (record.id === wanted)
        return entity(context, 200, project(signInView(record, r.ctx.tenantId), select));
    throw graphErrors.notFound(id);
  }
  return listSignIns(r, context, records, options, select, beta);
}

function listSignIns(
  r: GraphRequest,
  context: string,
  records: Iterable<SignInRecord>,
  options: Map<QueryOption, string>,
  select: string[] | undefined,
  beta: boolean,
): Reply {
  const orderBy = options.get('orderby');
  if (orderBy !== undefined && !/^\s*createdDateTime\s+desc\s*$/.test(orderBy))
    throw graphErrors.badRequest(
      `$orderby '${orderBy.slice(0, 100)}' is not supported by this emulator: sign-ins are listed newest arrival first (createdDateTime desc until the clock is moved back).`,
    );
  const top = pageSize(options.get('top'));
  const after = skipToken(options.get('skiptoken'));
  const filter = options.get('filter');
  const { predicates, eventTypes } =
    filter === undefined ? { predicates: [], eventTypes: false } : parseFilter(filter, beta);
  // Without a signInEventTypes clause Graph lists interactive user sign-ins only.
  if (!eventTypes) predicates.push(() => SIGN_IN_EVENT_TYPES.includes('interactiveUser'));
  const page: Record<string, unknown>[] = [];
  let last: number | undefined;
  let more = false;
  for (const record of records) {
    if (after !== undefined && record.seq >= after) continue;
    if (!predicates.every((p) => p(record))) continue;
    if (page.length === top) {
      more = true;
      break;
    }
    page.push(project(signInView(record, r.ctx.tenantId), select));
    last = record.seq;
  }
  const reply = list(context, page);
  if (more && last !== undefined) {
    const next = new URLSearchParams(r.query);
    next.delete('skiptoken');
    next.set('$skiptoken', String(last));
    reply.body!['@odata.nextLink'] = `${r.graphUrl}/auditLogs/signIns?${next.toString()}`;
  }
  return reply;
}

/**
 * The query options by name without `$`. In beta the `$` is optional, as in Graph; a parameter
 * that is no query option and has no `$` is not one of Graph's and is ignored, as Graph does.
 */
function queryOptions(query: URLSearchParams, beta: boolean): Map<QueryOption, string> {
  const options = new Map<QueryOption, string>();
  for (const [raw, value] of query) {
    const dollar = raw.startsWith('$');
    const name = (dollar ? raw.slice(1) : raw) as QueryOption;
    const known = QUERY_OPTIONS.includes(name);
    if (!dollar && !(beta && known)) continue;
    if (!known)
      throw graphErrors.badRequest(
        `Query option '${raw.slice(0, 40)}' is not supported on auditLogs/signIns by this emulator.`,
      );
    if (options.has(name))
      throw odataError(
        `Query option '$${name}' was specified more than once, but it must be specified at most once.`,
      );
    options.set(name, value);
  }
  return options;
}

/** `$select`'s names; one that is no property of `signIn` is refused, as Graph refuses it. */
function selectOf(text: string | undefined): string[] | undefined {
  if (!text) return undefined;
  const names = text.split(',').map((s) => s.trim());
  const unknown = names.filter((n) => !SIGN_IN_PROPERTIES.includes(n));
  if (unknown.length > 0)
    throw odataError(
      `Parsing OData Select and Expand failed: Could not find a property named '${unknown[0]!.slice(0, 60)}' on type 'microsoft.graph.signIn'.`,
    );
  return names;
}

function pageSize(text: string | undefined): number {
  if (text === undefined) return PAGE_SIZE;
  const n = /^\d{1,7}$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!(n >= 1 && n <= PAGE_SIZE))
    throw graphErrors.badRequest(
      `Invalid page size specified: '${text.slice(0, 20)}'. Must be between 1 and ${PAGE_SIZE}.`,
    );
  return n;
}

function skipToken(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
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

/**
 * Top-level clauses of `a and b and (c and d)`: `and` outside quotes and parentheses. Linear in
 * the text: ` and ` is looked for only where a run of spaces begins.
 */
function splitAnd(text: string, whole: string): string[] {
  const clauses: string[] = [];
  const and = /\s+and\s+/y;
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'")
      quoted = !quoted; // '' inside a string toggles twice: still quoted
    else if (quoted) continue;
    else if (c === '(') {
      if (++depth > MAX_FILTER_NESTING) throw unsupported(whole);
    } else if (c === ')') depth--;
    else if (depth === 0 && /\s/.test(c) && !/\s/.test(text[i - 1] ?? '')) {
      and.lastIndex = i;
      const found = and.exec(text);
      if (found) {
        clauses.push(text.slice(start, i));
        i += found[0].length - 1;
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
const COMPARE: Record<string, (a: number, b: number) => boolean> = {
  eq: (a, b) => a === b,
  ge: (a, b) => a >= b,
  gt: (a, b) => a > b,
  le: (a, b) => a <= b,
  lt: (a, b) => a < b,
};

function parseClause(clause: string, beta: boolean): { predicate: Predicate; eventTypes?: boolean } {
  let m = new RegExp(
    `^signInEventTypes/any\\(\\s*(\\w+)\\s*:\\s*(\\w+)\\s+(eq|ne)\\s+${STRING}\\s*\\)$`,
  ).exec(clause);
  if (m) {
    if (!beta) throw noProperty('signInEventTypes');
    if (m[1] !== m[2]) throw unsupportedClause(clause);
    // Every entry's event types are SIGN_IN_EVENT_TYPES: the clause is true of all or of none.
    const [value, eq] = [unquote(m[4]!), m[3] === 'eq'];
    const matches = SIGN_IN_EVENT_TYPES.some((t) => (t === value) === eq);
    return { eventTypes: true, predicate: () => matches };
  }
  m = /^status\/errorCode\s+(eq|ne)\s+(-?\d{1,10})$/.exec(clause);
  if (m) {
    const [code, eq] = [Number(m[2]), m[1] === 'eq'];
    return { predicate: (record) => (record.attempt.errorCode === code) === eq };
  }
  m = /^createdDateTime\s+(eq|ge|gt|le|lt)\s+(\S+)$/.exec(clause);
  if (m) {
    const at = dateTimeOffset(m[2]!);
    if (at === undefined) throw unsupportedClause(clause);
    const compare = COMPARE[m[1]!]!;
    return { predicate: (record) => compare(record.at, at) };
  }
  m = new RegExp(`^(\\w+)\\s+eq\\s+${STRING}$`).exec(clause);
  const eqProperty =
    m && Object.hasOwn(SIGN_IN_TEXT_PROPERTIES, m[1]!) ? SIGN_IN_TEXT_PROPERTIES[m[1]!] : undefined;
  if (m && eqProperty) {
    const value = unquote(m[2]!);
    const ignoreCase = isGuid(value); // ids are GUIDs, whatever their case
    const wanted = ignoreCase ? value.toLowerCase() : value;
    return {
      predicate: (record) => {
        const actual = eqProperty(record);
        return (ignoreCase ? actual.toLowerCase() : actual) === wanted;
      },
    };
  }
  m = new RegExp(`^startsWith\\(\\s*(\\w+)\\s*,\\s*${STRING}\\s*\\)$`, 'i').exec(clause);
  if (m && STARTS_WITH_PROPERTIES.includes(m[1]!)) {
    const [property, prefix] = [SIGN_IN_TEXT_PROPERTIES[m[1]!]!, unquote(m[2]!).toLowerCase()];
    return { predicate: (record) => property(record).toLowerCase().startsWith(prefix) };
  }
  throw unsupportedClause(clause);
}

/**
 * An Edm.DateTimeOffset literal in epoch ms, or undefined when it is not one or names no real
 * time (`2026-02-30`, `24:00`, an offset beyond ±14:00): never rolled over to another date.
 */
function dateTimeOffset(text: string): number | undefined {
  const m =
    /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,7})?)?(?:Z|([+-])(\d{2}):(\d{2}))$/.exec(
      text,
    );
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map((v) => Number(v ?? 0)) as number[];
  const date = new Date(Date.UTC(year!, month! - 1, day!));
  date.setUTCFullYear(year!); // years 0-99 too
  const realDay =
    date.getUTCFullYear() === year && date.getUTCMonth() === month! - 1 && date.getUTCDate() === day;
  const offsetOk = m[7] === undefined || (Number(m[8]) * 60 + Number(m[9]) <= 14 * 60 && Number(m[9]) < 60);
  if (!realDay || hour! > 23 || minute! > 59 || second! > 59 || !offsetOk) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : at;
}

function unsupportedClause(clause: string): GraphError {
  return graphErrors.unsupportedFilter(clause.slice(0, 200));
}

function unsupported(filter: string): GraphError {
  return graphErrors.unsupportedFilter(filter.slice(0, 200));
}

function noProperty(name: string): GraphError {
  return odataError(`Could not find a property named '${name}' on type 'microsoft.graph.signIn'.`);
}

/** Graph's answer when its OData parser refuses the query: 400 `BadRequest`. */
function odataError(message: string): GraphError {
  return new GraphError(400, 'BadRequest', message);
}
