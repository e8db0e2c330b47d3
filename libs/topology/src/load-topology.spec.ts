import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '@certflow/testing';
import {
  DEFAULT_TOPOLOGY_FILE,
  loadTopology,
  parseTopology,
  TOPOLOGY_SCHEMA_FILE,
  TopologyError,
  type LoadedTopology,
} from './index';
import { topologyErrorOf } from './load-topology.test-helpers';

const REPOSITORY = resolve(__dirname, '../../..');

/** A topology file as written, for tests to spoil. */
interface RawFile {
  $schema?: string;
  apis: Record<string, unknown>[];
  partners: { name: string; displayName: string; roles: Record<string, string[]>; [key: string]: unknown }[];
}

/** The problems `parseTopology` reports for `data` written as a file in `dir`. */
function problemsOf(data: unknown, file: string): string[] {
  return topologyErrorOf(() => parseTopology(JSON.stringify(data, null, 2), file)).problems;
}

describe('loadTopology', () => {
  const dir = tempDir('topology-');
  const file = join(dir.path, 'certflow.topology.json');
  writeFileSync(join(dir.path, 'policy.xml'), '<policies />');
  writeFileSync(join(dir.path, 'write.xml'), '<policies />');
  mkdirSync(join(dir.path, 'policies'));

  const valid = (): RawFile => ({
    $schema: 'topology.schema.json',
    apis: [
      {
        name: 'orders',
        displayName: 'orders API',
        identifierUri: 'api://orders',
        appRoles: [{ value: 'Orders.Read' }, { value: 'Orders.Write', description: 'Create orders' }],
        policy: 'policy.xml',
      },
    ],
    partners: [
      { name: 'contoso', displayName: 'contoso-partner', roles: { orders: ['Orders.Read'] } },
      {
        name: 'fabrikam',
        displayName: 'fabrikam-partner',
        roles: { orders: ['Orders.Read', 'Orders.Write'] },
      },
    ],
  });

  afterAll(() => dir.remove());

  it('loads the repository default: the orders API, contoso reads, fabrikam reads and writes', () => {
    const { file: loaded, topology } = loadTopology(join(REPOSITORY, DEFAULT_TOPOLOGY_FILE));
    expect(loaded).toBe(join(REPOSITORY, DEFAULT_TOPOLOGY_FILE));
    expect(topology.apis.map((a) => [a.name, a.identifierUri, a.accessTokenVersion])).toEqual([
      ['orders', 'api://certflow-orders', 2],
    ]);
    expect(topology.apis[0]!.appRoles.map((r) => r.value)).toEqual(['Orders.Read', 'Orders.Write']);
    expect(topology.apis[0]!.policy).toBe(join(REPOSITORY, 'apps/api/apim/policy.xml'));
    expect(topology.partners.map((p) => [p.name, p.roles])).toEqual([
      ['contoso', { orders: ['Orders.Read'] }],
      ['fabrikam', { orders: ['Orders.Read', 'Orders.Write'] }],
    ]);
  });

  it('fills in the defaults and makes paths absolute, relative to the file, not to the working directory', () => {
    writeFileSync(file, JSON.stringify(valid()));
    const { topology }: LoadedTopology = loadTopology(file);
    const [api] = topology.apis;
    expect(api).toEqual({
      name: 'orders',
      displayName: 'orders API',
      identifierUri: 'api://orders',
      accessTokenVersion: 2,
      appRoles: [
        { value: 'Orders.Read', displayName: 'Orders.Read', description: 'Applications holding Orders.Read' },
        { value: 'Orders.Write', displayName: 'Orders.Write', description: 'Create orders' },
      ],
      policy: join(dir.path, 'policy.xml'),
      operations: [],
    });
    expect(topology.partners[0]!.certificate).toEqual({
      commonName: 'contoso-partner',
      keySize: 2048,
      validityDays: 365,
    });
  });

  it('keeps what the file sets: token version, operations, certificate settings and .cer file', () => {
    writeFileSync(join(dir.path, 'contoso.cer'), Buffer.from([0x30, 0x82]));
    const data = valid();
    Object.assign(data.apis[0]!, {
      accessTokenVersion: 1,
      operations: [{ method: 'POST', urlTemplate: '/orders/{id}', policy: 'write.xml' }],
    });
    Object.assign(data.partners[0]!, {
      certificate: { commonName: 'contoso 2026', keySize: 4096, validityDays: 90, cerFile: 'contoso.cer' },
    });
    const { topology } = parseTopology(JSON.stringify(data), file);
    expect(topology.apis[0]!.accessTokenVersion).toBe(1);
    expect(topology.apis[0]!.operations).toEqual([
      { method: 'POST', urlTemplate: '/orders/{id}', policy: join(dir.path, 'write.xml') },
    ]);
    expect(topology.partners[0]!.certificate).toEqual({
      commonName: 'contoso 2026',
      keySize: 4096,
      validityDays: 90,
      cerFile: join(dir.path, 'contoso.cer'),
    });
  });

  it('names an unknown role with its place in the file and the likely fix', () => {
    const data = valid();
    data.partners[1]!.roles.orders = ['Orders.Wrte'];
    const err = topologyErrorOf(() => parseTopology(JSON.stringify(data), file));
    expect(err).toBeInstanceOf(TopologyError);
    expect(err.file).toBe(file);
    expect(err.message).toBe(
      `${file}: 1 problem\n  partners[1].roles.orders[0]: no role "Orders.Wrte" on api "orders" (did you mean "Orders.Write"?)`,
    );
  });

  it('collects every structural and meaning problem, not only the first', () => {
    const data = valid();
    data.apis.push({
      name: 'Orders',
      displayName: 'second',
      identifierUri: 'api://ORDERS',
      appRoles: [{ value: 'A' }, { value: 'A' }],
      policy: 'missing-policy.xml',
    });
    data.apis[0]!.identifierURI = 'api://x';
    data.apis[0]!.accessTokenVersion = 3;
    data.partners.push({ name: 'contoso', displayName: 'again', roles: { ordrs: ['Orders.Read'] } });
    data.partners[0]!.certificate = { keySize: 1024, cerFile: 'policies' };
    expect(problemsOf(data, file)).toEqual([
      'apis[0].identifierURI: unknown property (did you mean "identifierUri"?); allowed: name, displayName, identifierUri, accessTokenVersion, appRoles, policy, operations',
      'apis[0].accessTokenVersion: must be one of 1, 2, got 3',
      'apis[1].name: "Orders" must start with a lowercase letter and hold only lowercase letters, digits and hyphens (at most 40 characters)',
      'partners[0].certificate.keySize: must be one of 2048, 3072, 4096, got 1024',
      'apis[1].identifierUri: identifierUri "api://orders" is already used by apis[0].identifierUri',
      'apis[1].appRoles[1].value: duplicate role "A" (also apis[1].appRoles[0].value)',
      `apis[1].policy: file "missing-policy.xml" not found (${join(dir.path, 'missing-policy.xml')})`,
      'partners[2].name: duplicate partner name "contoso" (also partners[0].name)',
      `partners[0].certificate.cerFile: "policies" is not a file (${join(dir.path, 'policies')})`,
      'partners[2].roles.ordrs: no api "ordrs" (did you mean "orders"?)',
    ]);
  });

  it('reports missing and unknown properties and wrong types', () => {
    expect(problemsOf({ apis: [{ name: 'orders', appRoles: 'Orders.Read' }], partner: [] }, file)).toEqual([
      'partners: is required',
      'partner: unknown property (did you mean "partners"?); allowed: $schema, apis, partners',
      'apis[0].displayName: is required',
      'apis[0].identifierUri: is required',
      'apis[0].policy: is required',
      'apis[0].appRoles: must be an array, got a string',
    ]);
    expect(problemsOf([], file)).toEqual(['(top level): must be an object, got an array']);
    expect(
      problemsOf({ apis: [], partners: [{ name: 'x', displayName: 'x', roles: { Orders: [] } }] }, file),
    ).toEqual([
      'apis: must list at least 1 item',
      'partners[0].roles.Orders: "Orders" must start with a lowercase letter and hold only lowercase letters, digits and hyphens (at most 40 characters)',
      'partners[0].roles.Orders: no api "Orders"',
    ]);
  });

  it('checks operations: one per method and template, a path-only template with valid parameters', () => {
    const data = valid();
    Object.assign(data.apis[0]!, {
      operations: [
        { method: 'POST', urlTemplate: '/orders/{id}', policy: 'write.xml' },
        { method: 'POST', urlTemplate: '/orders/{orderId}', policy: 'write.xml' },
        { method: 'GET', urlTemplate: '/orders?id={id}', policy: 'write.xml' },
        { method: 'GET', urlTemplate: '/orders/{id', policy: 'write.xml' },
        { method: 'GET', urlTemplate: '/a/{x}/b/{x}', policy: 'write.xml' },
        { method: 'get', urlTemplate: 'orders', policy: 'nowhere.xml' },
      ],
    });
    expect(problemsOf(data, file)).toEqual([
      'apis[0].operations[5].method: must be one of "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", got "get"',
      'apis[0].operations[5].urlTemplate: "orders" must start with /, e.g. /orders/{id}',
      'apis[0].operations[1]: same method and URL template as apis[0].operations[0]',
      'apis[0].operations[2].urlTemplate: "/orders?id={id}" must be a path only (no query, fragment or spaces)',
      'apis[0].operations[3].urlTemplate: "/orders/{id" has unbalanced braces',
      'apis[0].operations[4].urlTemplate: parameter "{x}" appears twice',
      `apis[0].operations[5].policy: file "nowhere.xml" not found (${join(dir.path, 'nowhere.xml')})`,
    ]);
  });

  it('says where invalid JSON breaks, by line and column', () => {
    writeFileSync(file, '{\n  "apis": [],\n  "partners": [,]\n}\n');
    expect(() => loadTopology(file)).toThrow(
      `${file}: 1 problem\n  line 3, column 16: invalid JSON: expected a value, found ','`,
    );
    expect(() => parseTopology('{\n  "apis": [', file)).toThrow(
      /line 2, column 12: invalid JSON: expected a value, found the end of the file$/,
    );
  });

  it('says plainly that the file does not exist', () => {
    const missing = join(dir.path, 'nothing.json');
    expect(() => loadTopology(missing)).toThrow(`${missing}: 1 problem\n  the topology file does not exist`);
    expect(() => loadTopology(dir.path)).toThrow(/is a directory, not a topology file/);
  });
});

describe('topology.schema.json', () => {
  const schema = JSON.parse(readFileSync(TOPOLOGY_SCHEMA_FILE, 'utf8')) as Record<string, unknown>;

  it('is the schema the default topology file points at', () => {
    const topology = JSON.parse(readFileSync(join(REPOSITORY, DEFAULT_TOPOLOGY_FILE), 'utf8')) as {
      $schema: string;
    };
    expect(resolve(REPOSITORY, topology.$schema)).toBe(TOPOLOGY_SCHEMA_FILE);
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
  });

  it('closes every object and describes every property, so editors complete and explain the file', () => {
    const open: string[] = [];
    const undescribed: string[] = [];
    const defs = schema.$defs as Record<string, Record<string, unknown>>;
    const describedByRef = (s: Record<string, unknown>) =>
      typeof s.$ref === 'string' && typeof defs[s.$ref.replace('#/$defs/', '')]?.description === 'string';
    const walk = (node: Record<string, unknown>, where: string): void => {
      if (node.type === 'object' && node.properties !== undefined && node.additionalProperties !== false)
        open.push(where);
      for (const [name, child] of Object.entries(
        (node.properties ?? {}) as Record<string, Record<string, unknown>>,
      )) {
        if (typeof child.description !== 'string' && !describedByRef(child))
          undescribed.push(`${where}.${name}`);
        walk(child, `${where}.${name}`);
      }
      for (const key of ['items', 'additionalProperties'])
        if (typeof node[key] === 'object') walk(node[key] as Record<string, unknown>, `${where}.${key}`);
    };
    walk(schema, '(top level)');
    for (const [name, def] of Object.entries(defs)) walk(def, `$defs.${name}`);
    expect({ open, undescribed }).toEqual({ open: [], undescribed: [] });
  });
});
