/**
 * The XML layer of an APIM policy file: well-formedness, a tree of elements that remember
 * their line, named-value substitution (`{{name}}`) and the refusal of policy expressions.
 *
 * Named values are substituted after parsing, inside attribute values and text, so line
 * numbers always point into the file as written. Character references (`&#64;`) are decoded
 * first, so `&#64;(…)` is an expression as APIM reads it, never literal text. An unknown name is a load error.
 * Policy expressions (`@(…)`, `@{…}`: a value that starts with them, which is how APIM
 * recognises one) are kept only where a policy of this gateway evaluates them
 * (`EXPRESSION_ATTRIBUTES`, `EXPRESSION_TEXT`); anywhere else they are refused at load time,
 * never used as literal text. The policy's compiler then parses them (policy-expression.ts).
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import {
  CompiledExpression,
  compileExpression,
  ExpressionError,
  ExpressionType,
  isExpression,
} from './policy-expression';

/** A policy file could not be loaded; the message names the file, the line and the element. */
export class PolicyLoadError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly element: string | undefined,
    readonly detail: string,
  ) {
    super(
      `${file}${line === undefined ? '' : `:${line}`}: ${element === undefined ? '' : `<${element}>: `}${detail}`,
    );
    this.name = 'PolicyLoadError';
  }
}

export interface PolicyElement {
  readonly name: string;
  readonly line: number;
  /** Attribute values with named values already substituted. */
  readonly attributes: Readonly<Record<string, string>>;
  readonly children: readonly PolicyElement[];
  /** Concatenated text content (trimmed), named values substituted; '' when none. */
  readonly text: string;
}

export interface ParseOptions {
  /** Shown in errors; usually the path of the policy file. */
  file: string;
  namedValues: Readonly<Record<string, string>>;
}

/** Attributes (per element) whose value may be a policy expression. */
export const EXPRESSION_ATTRIBUTES: Readonly<Record<string, readonly string[]>> = {
  'rate-limit-by-key': ['counter-key', 'increment-condition'],
  'validate-jwt': ['token-value'],
  'validate-azure-ad-token': ['token-value'],
};
/** Elements (as `parent/element`) whose text may be a policy expression. */
export const EXPRESSION_TEXT: ReadonlySet<string> = new Set(['set-header/value']);

const NAMED_VALUE = /\{\{([^{}]*)\}\}/g;
const VALID_NAMED_VALUE_NAME = /^[A-Za-z0-9._-]+$/;

type OrderedNode = Record<string, unknown>;

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  allowBooleanAttributes: false,
  parseAttributeValue: false,
  parseTagValue: false,
  // Attribute values as written (separator=" " is a space); element text is trimmed in toElement.
  trimValues: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  captureMetaData: true,
  // Numeric character references (`&#64;`, `&#x40;`) are XML and are decoded, in one pass with the
  // five predefined entities; other named entities are refused before parsing (no DTD defines them).
  htmlEntities: true,
});

/** An entity reference XML itself defines: the five predefined ones and numeric character references. */
const UNDEFINED_ENTITY = /&(?!(?:lt|gt|amp|quot|apos|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});)[^;\s<>&]{0,32};?/;
const META = XMLParser.getMetaDataSymbol() as unknown as symbol;

/** Parses the policy XML into a single root element. */
export function parsePolicyXml(xml: string, opts: ParseOptions): PolicyElement {
  if (/<!DOCTYPE/i.test(xml)) {
    throw new PolicyLoadError(
      opts.file,
      lineAt(xml, xml.search(/<!DOCTYPE/i)),
      undefined,
      'a DOCTYPE is not allowed in a policy file',
    );
  }
  // Comments and CDATA hold literal text: blanked (same length, same lines) before the scan.
  const markup = xml.replace(/<!--[\s\S]*?-->|<!\[CDATA\[[\s\S]*?\]\]>/g, (m) => m.replace(/[^\n]/g, ' '));
  const entity = UNDEFINED_ENTITY.exec(markup);
  if (entity) {
    throw new PolicyLoadError(
      opts.file,
      lineAt(xml, entity.index),
      undefined,
      `not well-formed XML: '${entity[0]}' is not an entity XML defines (use &amp; for a literal &)`,
    );
  }
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    throw new PolicyLoadError(opts.file, valid.err.line, undefined, `not well-formed XML: ${valid.err.msg}`);
  }
  const lineStarts = lineStartsOf(xml);
  const top = (parser.parse(xml) as OrderedNode[]).filter((n) => !('#text' in n));
  if (top.length !== 1)
    throw new PolicyLoadError(
      opts.file,
      1,
      undefined,
      `expected exactly one root element, found ${top.length}`,
    );
  return toElement(top[0]!, opts, lineStarts, '');
}

function toElement(
  node: OrderedNode,
  opts: ParseOptions,
  lineStarts: number[],
  parent: string,
): PolicyElement {
  const name = Object.keys(node).find((k) => k !== ':@');
  if (name === undefined)
    throw new PolicyLoadError(opts.file, undefined, undefined, 'internal: element without a name');
  const meta = (node as Record<symbol, { startIndex?: number } | undefined>)[META];
  const line = meta?.startIndex === undefined ? 1 : lineOfIndex(lineStarts, meta.startIndex);
  const where = { file: opts.file, line, element: name };

  const rawAttributes = (node[':@'] ?? {}) as Record<string, unknown>;
  const attributes: Record<string, string> = {};
  for (const [attr, value] of Object.entries(rawAttributes)) {
    attributes[attr] = substitute(
      String(value),
      opts.namedValues,
      where,
      `attribute ${attr}`,
      EXPRESSION_ATTRIBUTES[name]?.includes(attr) ?? false,
    );
  }

  const children: PolicyElement[] = [];
  const texts: string[] = [];
  for (const child of (node[name] ?? []) as OrderedNode[]) {
    if ('#text' in child) texts.push(String(child['#text']));
    else children.push(toElement(child, opts, lineStarts, name));
  }
  const text = substitute(
    texts.join('').trim(),
    opts.namedValues,
    where,
    'text',
    EXPRESSION_TEXT.has(`${parent}/${name}`),
  );
  return { name, line, attributes, children, text };
}

function substitute(
  value: string,
  namedValues: Readonly<Record<string, string>>,
  where: { file: string; line: number; element: string },
  what: string,
  expressionAllowed: boolean,
): string {
  const result = value.replace(NAMED_VALUE, (_match, rawName: string) => {
    const name = rawName.trim();
    if (!VALID_NAMED_VALUE_NAME.test(name)) {
      throw new PolicyLoadError(
        where.file,
        where.line,
        where.element,
        `${what}: '{{${rawName}}}' is not a valid named value reference`,
      );
    }
    if (!Object.prototype.hasOwnProperty.call(namedValues, name)) {
      throw new PolicyLoadError(
        where.file,
        where.line,
        where.element,
        `${what}: unknown named value '${name}'`,
      );
    }
    return namedValues[name]!;
  });
  const trimmed = result.trimStart();
  if (!expressionAllowed && (trimmed.startsWith('@(') || trimmed.startsWith('@{'))) {
    throw new PolicyLoadError(
      where.file,
      where.line,
      where.element,
      `${what}: policy expressions (@(…), @{…}) are not supported here by this gateway (supported: rate-limit-by-key counter-key and increment-condition, set-header <value>)`,
    );
  }
  return result;
}

function lineStartsOf(text: string): number[] {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
  return starts;
}

function lineOfIndex(lineStarts: number[], index: number): number {
  let lo = 0;
  let hi = lineStarts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (lineStarts[mid]! <= index) lo = mid;
    else hi = mid - 1;
  }
  return lo + 1;
}

function lineAt(text: string, index: number): number {
  return lineOfIndex(lineStartsOf(text), Math.max(0, index));
}

/**
 * Reads an element's attributes against the list the gateway supports: any other attribute
 * is a load error, so a policy never runs with a setting silently dropped.
 */
export class ElementReader {
  constructor(
    readonly file: string,
    readonly element: PolicyElement,
  ) {}

  error(detail: string, at: PolicyElement = this.element): PolicyLoadError {
    return new PolicyLoadError(this.file, at.line, at.name, detail);
  }

  /** Fails on any attribute not in `supported`; names in `refused` get an explicit "not supported yet". */
  allowAttributes(supported: readonly string[], refused: readonly string[] = []): void {
    for (const attr of Object.keys(this.element.attributes)) {
      if (refused.includes(attr)) throw this.error(`attribute ${attr} is not supported by this gateway yet`);
      if (!supported.includes(attr)) throw this.error(`unknown or unsupported attribute ${attr}`);
    }
  }

  optional(attr: string): string | undefined {
    return this.element.attributes[attr];
  }

  required(attr: string): string {
    const value = this.element.attributes[attr];
    if (value === undefined || value.trim() === '') throw this.error(`attribute ${attr} is required`);
    return value;
  }

  boolean(attr: string, fallback: boolean): boolean {
    const value = this.element.attributes[attr];
    if (value === undefined) return fallback;
    const v = value.trim().toLowerCase();
    if (v === 'true') return true;
    if (v === 'false') return false;
    throw this.error(`attribute ${attr} must be true or false, got '${value}'`);
  }

  integer(attr: string, fallback: number, min: number, max: number): number {
    const value = this.element.attributes[attr];
    if (value === undefined) return fallback;
    const n = Number(value.trim());
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw this.error(`attribute ${attr} must be an integer ${min}-${max}, got '${value}'`);
    }
    return n;
  }

  /** Compiles `value` (an attribute or text of this element) when it is a policy expression of type `types`; literal text → undefined. */
  expression(
    value: string | undefined,
    what: string,
    types: readonly ExpressionType[],
  ): CompiledExpression | undefined {
    if (value === undefined || !isExpression(value)) return undefined;
    let compiled: CompiledExpression;
    try {
      compiled = compileExpression(value);
    } catch (err) {
      if (err instanceof ExpressionError)
        throw this.error(`${what}: policy expression not supported by this gateway: ${err.message}`);
      throw err;
    }
    if (!types.includes(compiled.type))
      throw this.error(`${what}: the expression is a ${compiled.type}, expected ${types.join(' or ')}`);
    return compiled;
  }

  /** No text content allowed (an element configured only by attributes and children). */
  noText(): void {
    if (this.element.text !== '') throw this.error('unexpected text content');
  }

  noChildren(): void {
    const first = this.element.children[0];
    if (first) throw this.error(`unexpected child element <${first.name}>`, first);
  }

  /** Fails on any child not in `supported`, and on a repeated child in `single`. */
  allowChildren(
    supported: readonly string[],
    refused: readonly string[] = [],
    single: readonly string[] = [],
  ): void {
    const seen = new Set<string>();
    for (const child of this.element.children) {
      if (refused.includes(child.name))
        throw this.error(`<${child.name}> is not supported by this gateway yet`, child);
      if (!supported.includes(child.name))
        throw this.error(`unknown or unsupported element in <${this.element.name}>`, child);
      if (single.includes(child.name) && seen.has(child.name))
        throw this.error(`<${child.name}> may appear only once`, child);
      seen.add(child.name);
    }
  }

  children(name: string): PolicyElement[] {
    return this.element.children.filter((c) => c.name === name);
  }
}
