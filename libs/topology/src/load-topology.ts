/**
 * Reads a topology file: JSON syntax (with line and column), structure (the JSON Schema), then
 * meaning (unique names, URIs and role values; partners' roles that exist; files that exist;
 * sane operations). All problems are collected before one TopologyError is thrown.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { scanJson } from './json-syntax';
import { fileProblem, policyProblems, utf8 } from './files';
import { quote, withSegment } from './quote';
import { schemaProblems } from './schema-errors';
import { didYouMean } from './suggest';
import { TopologyError } from './topology-error';
import type {
  LoadedTopology,
  PartnerCertificateSettings,
  Topology,
  TopologyApi,
  TopologyPartner,
} from './types';

export const DEFAULT_TOPOLOGY_FILE = 'certflow.topology.json';

/** As `cert create` of partner-worker makes them. */
const DEFAULT_KEY_SIZE = 2048;
const DEFAULT_VALIDITY_DAYS = 365;

/**
 * Reads, parses and validates a topology file; throws TopologyError naming every problem. The
 * file must be UTF-8 (one byte order mark allowed). Relative paths in it resolve from the
 * directory of the file itself, also when `file` is a symbolic link to it.
 */
export function loadTopology(file: string): LoadedTopology {
  const path = resolve(file);
  let bytes: Buffer;
  let real: string;
  try {
    bytes = readFileSync(path);
    real = realpathSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'the topology file does not exist'
        : code === 'EISDIR'
          ? 'is a directory, not a topology file'
          : `cannot read the topology file (${code ?? (err as Error).message})`;
    throw new TopologyError(path, [why]);
  }
  const text = utf8(bytes);
  if (typeof text !== 'string') throw new TopologyError(path, [text.problem]);
  return parseAt(text, path, dirname(real));
}

/** Parses and validates topology JSON; `file` (made absolute) anchors relative paths. */
export function parseTopology(text: string, file: string): LoadedTopology {
  const path = resolve(file);
  return parseAt(text, path, dirname(path));
}

function parseAt(text: string, path: string, base: string): LoadedTopology {
  const data = parseJson(text, path);
  const problems = [...schemaProblems(data), ...meaningProblems(data, base)];
  if (problems.length > 0) throw new TopologyError(path, problems);
  return { file: path, topology: withDefaults(data as RawTopology, base) };
}

/** Deeper nesting is refused before any other check walks it (a topology file needs about 6). */
const MAX_DEPTH = 64;

/** JSON with line and column for a syntax error; a key repeated in an object is an error too. */
function parseJson(text: string, file: string): unknown {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const { syntax, repeatedKeys, moreRepeatedKeys, tooDeep } = scanJson(body, MAX_DEPTH);
  if (tooDeep)
    throw new TopologyError(file, [
      `line ${tooDeep.line}, column ${tooDeep.column}: nested more than ${MAX_DEPTH} levels deep; a topology file needs far fewer`,
    ]);
  if (syntax)
    throw new TopologyError(file, [
      `line ${syntax.line}, column ${syntax.column}: invalid JSON: ${syntax.message}`,
    ]);
  if (repeatedKeys.length > 0)
    throw new TopologyError(
      file,
      repeatedKeys.map(
        (r) =>
          `${r.path}: line ${r.line}, column ${r.column}: key ${quote(r.key)} is repeated in the same object (JSON would keep only the last one); remove one`,
      ),
      moreRepeatedKeys,
    );
  return JSON.parse(body);
}

// ---- meaning ----

/** The file as written; fields are checked before use, since the schema may have failed. */
interface RawTopology {
  apis: RawApi[];
  partners: RawPartner[];
}
interface RawApi {
  name: string;
  displayName: string;
  identifierUri: string;
  accessTokenVersion?: 1 | 2;
  appRoles: { value: string; displayName?: string; description?: string }[];
  policy: string;
  operations?: { method: string; urlTemplate: string; policy: string }[];
}
interface RawPartner {
  name: string;
  displayName: string;
  certificate?: Partial<PartnerCertificateSettings>;
  roles?: Record<string, string[]>;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function objects(value: unknown): [Record<string, unknown>, number][] {
  return Array.isArray(value)
    ? value.flatMap((item, i) => (isObject(item) ? [[item, i] as [Record<string, unknown>, number]] : []))
    : [];
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** Reports the second and later occurrences of a key. */
function duplicates(
  entries: { key: string | undefined; path: string }[],
  problem: (key: string, firstPath: string) => string,
): string[] {
  const first = new Map<string, string>();
  const problems: string[] = [];
  for (const { key, path } of entries) {
    if (key === undefined) continue;
    const seen = first.get(key);
    if (seen === undefined) first.set(key, path);
    else problems.push(`${path}: ${problem(key, seen)}`);
  }
  return problems;
}

const TEMPLATE_PARAMETER = /^[A-Za-z_][A-Za-z0-9_-]*$/;

function urlTemplateProblems(path: string, template: string): string[] {
  if (!template.startsWith('/')) return []; // the schema said so already
  if (/[?#\s]/.test(template))
    return [`${path}: ${quote(template)} must be a path only (no query, fragment or spaces)`];
  const names: string[] = [];
  const rest = template.replace(/\{([^{}]*)\}/g, (_, name: string) => {
    names.push(name);
    return '';
  });
  if (/[{}]/.test(rest)) return [`${path}: ${quote(template)} has unbalanced braces`];
  const bad = names.find((n) => !TEMPLATE_PARAMETER.test(n));
  if (bad !== undefined) return [`${path}: ${quote(`{${bad}}`)} is not a valid template parameter name`];
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) return [`${path}: parameter ${quote(`{${twice}}`)} appears twice`];
  return [];
}

function apiProblems(apis: [Record<string, unknown>, number][], base: string): string[] {
  const problems = [
    ...duplicates(
      apis.map(([a, i]) => ({ key: str(a.name), path: `apis[${i}].name` })),
      (name, first) => `duplicate api name ${quote(name)} (also ${first})`,
    ),
    ...duplicates(
      apis.map(([a, i]) => ({ key: str(a.identifierUri)?.toLowerCase(), path: `apis[${i}].identifierUri` })),
      (uri, first) => `identifierUri ${quote(uri)} is already used by ${first}`,
    ),
  ];
  for (const [api, i] of apis) {
    problems.push(
      ...duplicates(
        objects(api.appRoles).map(([r, j]) => ({
          key: str(r.value),
          path: `apis[${i}].appRoles[${j}].value`,
        })),
        (value, first) => `duplicate role ${quote(value)} (also ${first})`,
      ),
      ...policyProblems(`apis[${i}].policy`, api.policy, base),
    );
    const operations = objects(api.operations);
    problems.push(
      ...duplicates(
        operations.map(([o, j]) => ({
          key:
            typeof o.method === 'string' && typeof o.urlTemplate === 'string'
              ? `${o.method} ${o.urlTemplate.replace(/\{[^{}]*\}/g, '{}').toLowerCase()}`
              : undefined,
          path: `apis[${i}].operations[${j}]`,
        })),
        (_, first) => `same method and URL template as ${first}`,
      ),
    );
    for (const [operation, j] of operations) {
      problems.push(...policyProblems(`apis[${i}].operations[${j}].policy`, operation.policy, base));
      const template = str(operation.urlTemplate);
      if (template !== undefined)
        problems.push(...urlTemplateProblems(`apis[${i}].operations[${j}].urlTemplate`, template));
    }
  }
  return problems;
}

function partnerProblems(
  partners: [Record<string, unknown>, number][],
  apis: [Record<string, unknown>, number][],
  base: string,
): string[] {
  const rolesOf = new Map<string, string[]>();
  for (const [api] of apis) {
    const name = str(api.name);
    if (name !== undefined && !rolesOf.has(name))
      rolesOf.set(
        name,
        objects(api.appRoles).flatMap(([r]) => str(r.value) ?? []),
      );
  }
  const problems = duplicates(
    partners.map(([p, i]) => ({ key: str(p.name), path: `partners[${i}].name` })),
    (name, first) => `duplicate partner name ${quote(name)} (also ${first})`,
  );
  for (const [partner, i] of partners) {
    if (isObject(partner.certificate))
      problems.push(...fileProblem(`partners[${i}].certificate.cerFile`, partner.certificate.cerFile, base));
    if (!isObject(partner.roles)) continue;
    for (const [apiName, values] of Object.entries(partner.roles)) {
      const path = withSegment(`partners[${i}].roles`, apiName);
      const roles = rolesOf.get(apiName);
      if (roles === undefined) {
        problems.push(`${path}: no api ${quote(apiName)}${didYouMean(apiName, [...rolesOf.keys()])}`);
        continue;
      }
      if (!Array.isArray(values)) continue;
      values.forEach((value, j) => {
        if (typeof value === 'string' && !roles.includes(value))
          problems.push(
            `${path}[${j}]: no role ${quote(value)} on api ${quote(apiName)}${didYouMean(value, roles)}`,
          );
      });
    }
  }
  return problems;
}

function meaningProblems(data: unknown, base: string): string[] {
  if (!isObject(data)) return [];
  const apis = objects(data.apis);
  return [...apiProblems(apis, base), ...partnerProblems(objects(data.partners), apis, base)];
}

// ---- defaults ----

function withDefaults(raw: RawTopology, base: string): Topology {
  const apis = raw.apis.map((api): TopologyApi => ({
    name: api.name,
    displayName: api.displayName,
    identifierUri: api.identifierUri,
    accessTokenVersion: api.accessTokenVersion ?? 2,
    appRoles: api.appRoles.map((role) => ({
      value: role.value,
      displayName: role.displayName ?? role.value,
      description: role.description ?? `Applications holding ${role.value}`,
    })),
    policy: resolve(base, api.policy),
    operations: (api.operations ?? []).map((op) => ({
      method: op.method,
      urlTemplate: op.urlTemplate,
      policy: resolve(base, op.policy),
    })),
  }));
  const partners = raw.partners.map((partner): TopologyPartner => {
    const certificate = partner.certificate ?? {};
    return {
      name: partner.name,
      displayName: partner.displayName,
      certificate: {
        commonName: certificate.commonName ?? partner.displayName,
        keySize: certificate.keySize ?? DEFAULT_KEY_SIZE,
        validityDays: certificate.validityDays ?? DEFAULT_VALIDITY_DAYS,
        ...(certificate.cerFile !== undefined ? { cerFile: resolve(base, certificate.cerFile) } : {}),
      },
      roles: Object.fromEntries(
        Object.entries(partner.roles ?? {}).map(([api, values]) => [api, [...values]]),
      ),
    };
  });
  return { apis, partners };
}
