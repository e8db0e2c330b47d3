/** What the Graph API's route handlers share: the request they get, the reply they give, and OData helpers. */
import { isGuid } from '@certflow/claims';
import type { Directory } from './directory';
import type { GraphAuthContext, GraphCaller } from './graph-auth';
import { graphErrors } from './graph-errors';
import type { SignInLog } from './sign-in-log';

export interface GraphContext extends GraphAuthContext {
  directory: Directory;
  signInLog: SignInLog;
}

export interface GraphRequest {
  /** `v1.0`, or `beta` (which serves only what Graph has only there: service-principal sign-ins). */
  version: 'v1.0' | 'beta';
  caller: GraphCaller;
  method: string;
  segments: string[];
  query: URLSearchParams;
  graphUrl: string;
  body: () => Promise<unknown>;
  ctx: GraphContext;
}

export type Reply = { status: number; body?: Record<string, unknown> };

export function list(context: string, value: unknown[]): Reply {
  return { status: 200, body: { '@odata.context': context, value } };
}

export function entity(context: string, status: number, value: Record<string, unknown>): Reply {
  return { status, body: { '@odata.context': `${context}/$entity`, ...value } };
}

export function selectOf(query: URLSearchParams): string[] | undefined {
  const select = query.get('$select');
  return select ? select.split(',').map((s) => s.trim()) : undefined;
}

/** `$filter=<property> eq '<value>'`, the only filter form this emulator understands. */
export function filterBy<T extends object>(
  query: URLSearchParams,
  items: readonly T[],
  properties: (keyof T & string)[],
): T[] {
  const filter = query.get('$filter');
  if (filter === null) return [...items];
  const match = /^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$/.exec(filter);
  const property = match?.[1] as (keyof T & string) | undefined;
  if (!match || !property || !properties.includes(property))
    throw graphErrors.unsupportedFilter(filter.slice(0, 200));
  const value = match[2]!.replace(/''/g, "'");
  const ignoreCase = isGuid(value); // ids are GUIDs, whatever their case
  return items.filter((item) => {
    const actual = String(item[property]);
    return ignoreCase ? actual.toLowerCase() === value.toLowerCase() : actual === value;
  });
}
