/**
 * Structural validation of a topology file against topology.schema.json (ajv, JSON Schema
 * 2020-12), with ajv's errors turned into `<path in file>: <message>` lines.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import { quote, withSegment } from './quote';
import { didYouMean } from './suggest';

/** Absolute path of the JSON Schema shipped with the library (libs/topology/topology.schema.json). */
export const TOPOLOGY_SCHEMA_FILE = join(__dirname, '..', 'topology.schema.json');

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (!compiled) {
    const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true });
    // VS Code's extension keyword: the message editors show when a pattern does not match.
    ajv.addKeyword({ keyword: 'patternErrorMessage', schemaType: 'string' });
    compiled = ajv.compile(JSON.parse(readFileSync(TOPOLOGY_SCHEMA_FILE, 'utf8')) as object);
  }
  return compiled;
}

/** `/partners/1/roles/orders/0` → `partners[1].roles.orders[0]`; '' → `(top level)`. */
export function pathOf(pointer: string, child?: string): string {
  const segments = pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (child !== undefined) segments.push(child);
  const path = segments.reduce(
    (at, segment) => (/^\d+$/.test(segment) ? `${at}[${segment}]` : withSegment(at, segment)),
    '',
  );
  return path === '' ? '(top level)' : path;
}

function messageOf(error: ErrorObject): { path: string; message: string } {
  const params = error.params as Record<string, unknown>;
  const parent = (error.parentSchema ?? {}) as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return {
        path: pathOf(error.instancePath, String(params.missingProperty)),
        message: 'is required',
      };
    case 'additionalProperties': {
      const name = String(params.additionalProperty);
      const allowed = Object.keys((parent.properties ?? {}) as object);
      return {
        path: pathOf(error.instancePath, name),
        message: `unknown property${didYouMean(name, allowed)}; allowed: ${allowed.join(', ')}`,
      };
    }
    case 'pattern':
      return {
        // a key of a map (partners[].roles) is reported at the key
        path: pathOf(error.instancePath, error.propertyName),
        message:
          typeof parent.patternErrorMessage === 'string'
            ? `${quote(String(error.data))} ${parent.patternErrorMessage}`
            : `must match ${String(params.pattern)}`,
      };
    case 'enum':
      return {
        path: pathOf(error.instancePath),
        message: `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}, got ${shown(error.data)}`,
      };
    case 'type':
      return {
        path: pathOf(error.instancePath),
        message: `must be ${nameOfType(String(params.type))}, got ${nameOfType(jsonType(error.data))}`,
      };
    case 'minItems':
      return {
        path: pathOf(error.instancePath),
        message: `must list at least ${String(params.limit)} item${params.limit === 1 ? '' : 's'}`,
      };
    case 'propertyNames':
      return { path: pathOf(error.instancePath, String(params.propertyName)), message: 'invalid name' };
    case 'uniqueItems': {
      // the later item is the duplicate (ajv's i and j come in either order)
      const [first, later] = [Number(params.i), Number(params.j)].sort((a, b) => a - b);
      return { path: pathOf(error.instancePath, String(later)), message: `duplicate of [${first}]` };
    }
    default:
      return { path: pathOf(error.instancePath), message: error.message ?? error.keyword };
  }
}

/** A scalar as written; an array or object by its type (never serialised whole). */
function shown(value: unknown): string {
  if (typeof value === 'string') return quote(value);
  if (typeof value === 'object' && value !== null) return nameOfType(jsonType(value));
  return String(value);
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function nameOfType(type: string): string {
  return type === 'null' ? 'null' : `${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`;
}

/** Every structural problem of `data`, each `<path in file>: <message>`; [] when it fits the schema. */
export function schemaProblems(data: unknown): string[] {
  const validate = validator();
  if (validate(data)) return [];
  const problems = (validate.errors ?? [])
    // a name that fails its pattern under propertyNames is reported once, by the pattern error
    .filter((e) => e.keyword !== 'propertyNames')
    .map((e) => {
      const { path, message } = messageOf(e);
      return `${path}: ${message}`;
    });
  return [...new Set(problems)];
}
