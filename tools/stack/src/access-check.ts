/**
 * Proves, for each partner, exactly the access the topology grants: the partner worker calls
 * `GET /orders` and `POST /orders` through the gateway, and each answer is compared with what
 * it should be: 2xx when the partner holds every role the operation requires (the API's OpenAPI
 * document lists them as `x-app-roles`), 403 when it does not.
 */
import type { TopologyApi, TopologyPartner } from '@certflow/topology';

export interface AccessCall {
  method: 'GET' | 'POST';
  path: string;
  /** JSON body (POST). */
  body?: unknown;
}

/** A valid order (apps/api CreateOrderInput). */
const ORDER = { customerReference: 'PO-npm-start', total: { amount: '12.50', currency: 'EUR' } };

export const ACCESS_CALLS: readonly AccessCall[] = [
  { method: 'GET', path: '/orders' },
  { method: 'POST', path: '/orders', body: ORDER },
];

/** The OpenAPI extension on each operation listing the app roles it requires (all of them). */
const APP_ROLES_EXTENSION = 'x-app-roles';

/** What the served API's `/docs-json` says about roles. */
export interface RequiredRoles {
  /** Role values the call requires. */
  of(call: AccessCall): string[];
  /** Every operation of the document that requires roles, e.g. `POST /orders` → `['Orders.Write']`. */
  operations: { operation: string; roles: string[] }[];
}

export async function requiredRolesFromOpenApi(apiUrl: string): Promise<RequiredRoles> {
  const url = `${apiUrl}/docs-json`;
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url} answered HTTP ${response.status}`);
  const document = (await response.json()) as {
    paths?: Record<string, Record<string, Record<string, unknown>>>;
  };
  const rolesOf = (operation: Record<string, unknown> | undefined): string[] | undefined => {
    const roles = operation?.[APP_ROLES_EXTENSION];
    return Array.isArray(roles) && roles.every((r) => typeof r === 'string') ? roles : undefined;
  };
  return {
    of(call) {
      const roles = rolesOf(document.paths?.[call.path]?.[call.method.toLowerCase()]);
      if (roles === undefined)
        throw new Error(
          `${url} states no ${APP_ROLES_EXTENSION} for ${call.method} ${call.path}: cannot tell which answer a partner should get`,
        );
      return roles;
    },
    operations: Object.entries(document.paths ?? {}).flatMap(([path, methods]) =>
      Object.entries(methods).flatMap(([method, operation]) => {
        const roles = rolesOf(operation);
        return roles && roles.length > 0 ? [{ operation: `${method.toUpperCase()} ${path}`, roles }] : [];
      }),
    ),
  };
}

/**
 * Operations of the API that require a role its topology entry does not define: no partner can
 * be granted it, so nobody can reach them (the topology dropped a role the code still requires).
 */
export function unreachableOperations(api: TopologyApi, required: RequiredRoles): [string, string][] {
  const defined = new Set(api.appRoles.map((r) => r.value));
  return required.operations.flatMap(({ operation, roles }) => {
    const missing = roles.filter((r) => !defined.has(r));
    return missing.length === 0
      ? []
      : [
          [
            operation,
            `requires ${missing.join(', ')}, which api ${api.name} of the topology does not define`,
          ],
        ];
  });
}

export interface Expectation {
  /** Whether a 2xx answer is expected (else 403). */
  allowed: boolean;
  /** Why, e.g. `requires Orders.Write; contoso holds Orders.Read`. */
  reason: string;
}

export function expectedAnswer(partner: TopologyPartner, apiName: string, required: string[]): Expectation {
  const held = partner.roles[apiName] ?? [];
  const missing = required.filter((r) => !held.includes(r));
  return {
    allowed: missing.length === 0,
    reason: `requires ${required.join(', ') || 'no role'}; ${partner.name} holds ${held.join(', ') || 'no role'}`,
  };
}

export const describeExpectation = (e: Expectation): string => (e.allowed ? '2xx' : '403');

/** Whether `status` is the answer `expectation` calls for. */
export const answersAsExpected = (e: Expectation, status: number): boolean =>
  e.allowed ? status >= 200 && status < 300 : status === 403;

/** The partner worker's arguments for one call (`call [METHOD] <path> --data … --json`). */
export function callArguments(call: AccessCall, extra: string[] = []): string[] {
  return [
    'call',
    ...(call.method === 'GET' ? [] : [call.method]),
    call.path,
    ...(call.body === undefined ? [] : ['--data', JSON.stringify(call.body)]),
    ...extra,
    '--json',
  ];
}
