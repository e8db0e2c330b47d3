/**
 * The code and the topology agree: every app role a route of the API requires (collected from
 * the running API's OpenAPI document, `x-app-roles`, which `RequireRoles` writes next to the
 * guard's metadata) is defined on the api `TOPOLOGY_API` of the repository's topology file.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { ModulesContainer } from '@nestjs/core';
import { REQUIRED_APP_ROLES } from '@certflow/nest-entra-auth';
import { DEFAULT_TOPOLOGY_FILE, loadTopology, type LoadedTopology } from '@certflow/topology';
import { APP_ROLES_EXTENSION, AppRole, TOPOLOGY_API } from './app-roles';
import { OPERATION_METHODS } from './openapi/error-responses';
import { startApiWithEmulator, type ApiWithEmulator } from './testing/api-with-emulator.test-helpers';

const TOPOLOGY_FILE = resolve(__dirname, '../../..', DEFAULT_TOPOLOGY_FILE);

interface RequiredRole {
  /** `METHOD /path` */
  route: string;
  role: string;
}

type OpenApiPaths = Record<string, Partial<Record<string, Record<string, unknown>>>>;

/** Every (route, role) the document's operations require. */
function requiredRoles(paths: OpenApiPaths): RequiredRole[] {
  return Object.entries(paths).flatMap(([path, item]) =>
    OPERATION_METHODS.flatMap((method) => {
      const roles = item[method]?.[APP_ROLES_EXTENSION];
      if (roles === undefined) return [];
      if (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string'))
        throw new Error(
          `${method.toUpperCase()} ${path}: ${APP_ROLES_EXTENSION} is not a list of role values`,
        );
      return roles.map((role: string) => ({ route: `${method.toUpperCase()} ${path}`, role }));
    }),
  );
}

/** One message per required role that the topology does not define on the api this app serves. */
function rolesMissingFromTopology(required: RequiredRole[], loaded: LoadedTopology): string[] {
  const api = loaded.topology.apis.find((a) => a.name === TOPOLOGY_API);
  if (!api) return [`${loaded.file}: no api "${TOPOLOGY_API}", the api apps/api serves (src/app-roles.ts)`];
  const defined = new Set(api.appRoles.map((r) => r.value));
  return required
    .filter(({ role }) => !defined.has(role))
    .map(
      ({ route, role }) =>
        `${route} requires app role "${role}", which ${loaded.file} does not define on api "${TOPOLOGY_API}"`,
    );
}

/** Every (route, role) the guard enforces, read from the Nest metadata of the app's controllers. */
function guardedRoles(modules: ModulesContainer): RequiredRole[] {
  const joinPath = (...parts: unknown[]) =>
    `/${parts.filter((p): p is string => typeof p === 'string' && p !== '' && p !== '/').join('/')}`.replace(
      /:(\w+)/g,
      '{$1}',
    );
  return [...modules.values()].flatMap((module) =>
    [...module.controllers.values()].flatMap(({ metatype }) => {
      const controller = metatype as unknown as { prototype: Record<string, unknown> };
      return Object.getOwnPropertyNames(controller.prototype).flatMap((key) => {
        const handler = controller.prototype[key] as object;
        const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
        const roles = (Reflect.getMetadata(REQUIRED_APP_ROLES, handler) ??
          Reflect.getMetadata(REQUIRED_APP_ROLES, controller)) as string[] | undefined;
        if (method === undefined || !roles) return [];
        const route = `${RequestMethod[method]} ${joinPath(
          Reflect.getMetadata(PATH_METADATA, controller),
          Reflect.getMetadata(PATH_METADATA, handler),
        )}`;
        return roles.map((role) => ({ route, role }));
      });
    }),
  );
}

let stack: ApiWithEmulator | undefined;
let required: RequiredRole[];
const scratch = mkdtempSync(join(tmpdir(), 'certflow-api-app-roles-'));

beforeAll(async () => {
  stack = await startApiWithEmulator('app-roles');
  const document = (await (await fetch(`${stack.api.url}/docs-json`)).json()) as { paths: OpenApiPaths };
  required = requiredRoles(document.paths);
});

afterAll(async () => {
  await stack?.close();
  rmSync(scratch, { recursive: true, force: true });
});

describe('the app roles the routes require', () => {
  it('are stated on the operations of the OpenAPI document', () => {
    expect(required).toEqual(
      expect.arrayContaining([
        { route: 'GET /orders', role: AppRole.OrdersRead },
        { route: 'GET /orders/{id}', role: AppRole.OrdersRead },
        { route: 'POST /orders', role: AppRole.OrdersWrite },
      ]),
    );
  });

  it('are the ones the guard enforces, on every route (nothing required without being stated)', () => {
    const byRoute = (a: RequiredRole, b: RequiredRole) =>
      `${a.route} ${a.role}`.localeCompare(`${b.route} ${b.role}`);
    expect([...required].sort(byRoute)).toEqual(
      guardedRoles(stack!.api.app.get(ModulesContainer)).sort(byRoute),
    );
  });

  it(`are all defined on api "${TOPOLOGY_API}" of ${DEFAULT_TOPOLOGY_FILE}`, () => {
    const problems = rolesMissingFromTopology(required, loadTopology(TOPOLOGY_FILE));
    expect(problems, problems.join('\n')).toEqual([]);
  });

  it('are reported by route, role and file when the topology lacks one', () => {
    // A copy without Orders.Write (nor its grants, so that the copy itself is valid).
    const data = JSON.parse(readFileSync(TOPOLOGY_FILE, 'utf8')) as {
      apis: { name: string; appRoles: { value: string }[]; policy: string }[];
      partners: { roles: Record<string, string[]> }[];
    };
    for (const api of data.apis) {
      api.policy = resolve(dirname(TOPOLOGY_FILE), api.policy);
      if (api.name === TOPOLOGY_API)
        api.appRoles = api.appRoles.filter((r) => r.value !== AppRole.OrdersWrite);
    }
    for (const partner of data.partners) {
      const granted = partner.roles[TOPOLOGY_API];
      if (granted) partner.roles[TOPOLOGY_API] = granted.filter((r) => r !== AppRole.OrdersWrite);
    }
    const copy = join(scratch, DEFAULT_TOPOLOGY_FILE);
    writeFileSync(copy, JSON.stringify(data));

    expect(rolesMissingFromTopology(required, loadTopology(copy))).toEqual([
      `POST /orders requires app role "Orders.Write", which ${copy} does not define on api "orders"`,
    ]);
  });
});
