/**
 * APIM policy expressions `@(…)`: a small, documented subset of the C# APIM accepts, parsed
 * when the policy file is loaded into a typed tree and evaluated per request by closures.
 * Nothing is ever passed to `eval`/`Function`; anything outside the subset is a load error.
 *
 * Grammar (C# precedence):
 *   expr       := or
 *   or         := and ('||' and)*
 *   and        := equality ('&&' equality)*
 *   equality   := relational (('==' | '!=') relational)?
 *   relational := additive (('<' | '<=' | '>' | '>=') additive)?      (int operands)
 *   additive   := unary ('+' unary)*                                   (string concatenation, or int + int)
 *   unary      := '!' unary | postfix
 *   postfix    := primary ( '.' Name | '?.' Name | '[' expr ']' | '(' args ')' )*
 *   primary    := "string" | integer | true | false | null | context | '(' Type ')' unary | '(' expr ')'
 *
 * Members (everything else is refused):
 *   context.Request.Headers.GetValueOrDefault(name[, default])   string (values comma-joined)
 *   context.Request.IpAddress / .Method / .Url.Path              string
 *   context.Request.Url.Query.GetValueOrDefault(name[, default]) string
 *   context.Request.Certificate.Thumbprint / .Subject / .Issuer  string (null without a client certificate)
 *   context.Response.StatusCode                                  int (outbound; rate-limit increment-condition)
 *   context.Response.Headers.GetValueOrDefault(name[, default])  string
 *   context.Subscription.Id                                      string (null without a subscription)
 *   context.LastError.Source / .Reason / .Message                string (on-error; null elsewhere)
 *   context.Variables["name"]                                    object; (string) or (Jwt) casts
 *   context.Variables.ContainsKey("name")                        bool
 *   ((Jwt)context.Variables["jwt"]).Claims.GetValueOrDefault(name[, default])  string
 *
 * Deviation: a member of `null` is `null` (C# would throw a NullReferenceException), so
 * `context.Subscription.Id` without a subscription is `null`, which concatenates as "".
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { PolicyContext } from './policy-context';

export type ExpressionType =
  | 'string'
  | 'int'
  | 'bool'
  | 'null'
  | 'object'
  | 'context'
  | 'request'
  | 'response'
  | 'headers'
  | 'subscription'
  | 'variables'
  | 'jwt'
  | 'claims'
  | 'certificate'
  | 'url'
  | 'query'
  | 'lasterror';

type Value = unknown;
type Evaluator = (ctx: PolicyContext) => Value;

export interface CompiledExpression {
  readonly source: string;
  readonly type: ExpressionType;
  /** True when it reads `context.Response` (only meaningful once there is a response). */
  readonly usesResponse: boolean;
  evaluate(ctx: PolicyContext): Value;
}

export class ExpressionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExpressionError';
  }
}

/** True when APIM would treat the value as a policy expression. */
export function isExpression(value: string): boolean {
  const v = value.trimStart();
  return v.startsWith('@(') || v.startsWith('@{');
}

/** Compiles `@(…)`; multi-statement `@{…}` blocks are refused. */
export function compileExpression(value: string): CompiledExpression {
  const source = value.trim();
  if (source.startsWith('@{'))
    throw new ExpressionError(
      'multi-statement expressions @{…} are not supported (only single @(…) expressions)',
    );
  if (!source.startsWith('@(') || !source.endsWith(')'))
    throw new ExpressionError(`'${source}' is not an @(…) expression`);
  const parser = new Parser(tokenize(source.slice(2, -1)));
  const node = parser.parseExpression();
  parser.expectEnd();
  if (!['string', 'int', 'bool', 'null', 'object'].includes(node.type))
    throw new ExpressionError(`${typeName(node.type)} is not a value (use one of its members)`);
  return { source, type: node.type, usesResponse: parser.usesResponse, evaluate: node.evaluate };
}

/** Converts a value the way C# string concatenation does (null → ""). */
export function expressionString(value: Value): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  return String(value);
}

// ---------------------------------------------------------------- tokens

type Token =
  | { kind: 'string'; value: string }
  | { kind: 'int'; value: number }
  | { kind: 'name'; value: string }
  | { kind: 'punct'; value: string };

const PUNCTUATION = [
  '?.',
  '==',
  '!=',
  '<=',
  '>=',
  '&&',
  '||',
  '(',
  ')',
  '[',
  ']',
  '.',
  ',',
  '+',
  '<',
  '>',
  '!',
];

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    if (ch === '"') {
      let value = '';
      i++;
      for (;;) {
        if (i >= text.length) throw new ExpressionError('unterminated string literal');
        const c = text[i]!;
        if (c === '"') break;
        if (c === '\\') {
          const next = text[i + 1];
          const escapes: Record<string, string> = {
            '"': '"',
            '\\': '\\',
            n: '\n',
            t: '\t',
            r: '\r',
            '0': '\0',
          };
          if (next === undefined || !(next in escapes))
            throw new ExpressionError(`unsupported escape sequence \\${next ?? ''} in a string literal`);
          value += escapes[next];
          i += 2;
          continue;
        }
        value += c;
        i++;
      }
      i++;
      tokens.push({ kind: 'string', value });
      continue;
    }
    if (/[0-9]/.test(ch)) {
      const m = /^[0-9]+/.exec(text.slice(i))![0];
      if (/^[0-9]+[A-Za-z_.]/.test(text.slice(i)))
        throw new ExpressionError(
          `unsupported number literal near '${text.slice(i, i + 10)}' (integers only)`,
        );
      const n = Number(m);
      if (!Number.isSafeInteger(n) || n > 2147483647)
        throw new ExpressionError(`integer literal ${m} is too large`);
      tokens.push({ kind: 'int', value: n });
      i += m.length;
      continue;
    }
    if (/[A-Za-z_]/.test(ch)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))![0];
      tokens.push({ kind: 'name', value: m });
      i += m.length;
      continue;
    }
    const p = PUNCTUATION.find((q) => text.startsWith(q, i));
    if (!p) throw new ExpressionError(`unsupported character '${ch}' in expression`);
    tokens.push({ kind: 'punct', value: p });
    i += p.length;
  }
  return tokens;
}

// ---------------------------------------------------------------- parser

interface Node {
  type: ExpressionType;
  evaluate: Evaluator;
}

const describe = (t: Token | undefined): string =>
  t === undefined ? 'end of expression' : t.kind === 'string' ? `"${t.value}"` : String(t.value);

function headerValue(headers: OutgoingHttpHeaders | IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : String(v);
}

function claimValue(claims: Record<string, unknown>, name: string): string | undefined {
  const v = claims[name];
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v)) return v.map(String).join(',');
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

type Getter = (target: unknown, ctx: PolicyContext) => Value;
interface Member {
  type: ExpressionType;
  get: Getter;
}
interface Method {
  returns: ExpressionType;
  params: ExpressionType[];
  optional: number; // trailing optional params
  call: (target: unknown, args: Value[], ctx: PolicyContext) => Value;
}

interface RequestView {
  ctx: PolicyContext;
}

const getValueOrDefault = (lookup: (target: unknown, name: string) => string | undefined): Method => ({
  returns: 'string',
  params: ['string', 'string'],
  optional: 1,
  call: (target, args) =>
    lookup(target, String(args[0])) ?? (args.length > 1 ? (args[1] as string | null) : null),
});

const MEMBERS: Partial<Record<ExpressionType, Record<string, Member>>> = {
  context: {
    Request: { type: 'request', get: (_t, ctx) => ({ ctx }) },
    Response: { type: 'response', get: (_t, ctx) => ctx.response ?? null },
    Subscription: { type: 'subscription', get: (_t, ctx) => ctx.subscription ?? null },
    Variables: { type: 'variables', get: (_t, ctx) => ctx.variables },
    LastError: { type: 'lasterror', get: (_t, ctx) => ctx.lastError ?? null },
  },
  lasterror: {
    Source: { type: 'string', get: (t) => (t as { source: string }).source },
    Reason: { type: 'string', get: (t) => (t as { reason: string }).reason },
    Message: { type: 'string', get: (t) => (t as { message: string }).message },
  },
  request: {
    Headers: { type: 'headers', get: (_t, ctx) => ctx.request.headers },
    IpAddress: { type: 'string', get: (_t, ctx) => ctx.request.clientIp },
    Method: { type: 'string', get: (_t, ctx) => ctx.request.method },
    Url: { type: 'url', get: (_t, ctx) => ctx.request },
    Certificate: { type: 'certificate', get: (_t, ctx) => ctx.request.clientCertificate ?? null },
  },
  url: {
    Path: { type: 'string', get: (_t, ctx) => ctx.request.url.split('?')[0] },
    Query: { type: 'query', get: (_t, ctx) => ctx.request.query },
  },
  response: {
    StatusCode: { type: 'int', get: (t) => (t as { statusCode: number }).statusCode },
    Headers: { type: 'headers', get: (t) => (t as { headers: OutgoingHttpHeaders }).headers },
  },
  subscription: { Id: { type: 'string', get: (t) => (t as { id: string }).id } },
  certificate: {
    Thumbprint: { type: 'string', get: (t) => (t as { thumbprint: string }).thumbprint },
    Subject: { type: 'string', get: (t) => (t as { subject: string }).subject },
    Issuer: { type: 'string', get: (t) => (t as { issuer: string }).issuer },
  },
  jwt: { Claims: { type: 'claims', get: (t) => (t as { claims: Record<string, unknown> }).claims } },
};

const METHODS: Partial<Record<ExpressionType, Record<string, Method>>> = {
  headers: { GetValueOrDefault: getValueOrDefault((t, n) => headerValue(t as OutgoingHttpHeaders, n)) },
  query: {
    GetValueOrDefault: getValueOrDefault((t, n) => (t as URLSearchParams).getAll(n).join(',') || undefined),
  },
  claims: { GetValueOrDefault: getValueOrDefault((t, n) => claimValue(t as Record<string, unknown>, n)) },
  variables: {
    ContainsKey: {
      returns: 'bool',
      params: ['string'],
      optional: 0,
      call: (t, args) => (t as Map<string, unknown>).has(String(args[0])),
    },
  },
};

const CASTS: Record<string, ExpressionType> = { Jwt: 'jwt', string: 'string' };

class Parser {
  private pos = 0;
  usesResponse = false;
  constructor(private readonly tokens: Token[]) {}

  private peek(offset = 0): Token | undefined {
    return this.tokens[this.pos + offset];
  }
  private isPunct(value: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t?.kind === 'punct' && t.value === value;
  }
  private take(value: string): void {
    if (!this.isPunct(value))
      throw new ExpressionError(`expected '${value}' but found ${describe(this.peek())}`);
    this.pos++;
  }
  expectEnd(): void {
    if (this.pos < this.tokens.length) throw new ExpressionError(`unexpected ${describe(this.peek())}`);
  }

  parseExpression(): Node {
    return this.parseOr();
  }

  private parseOr(): Node {
    let left = this.parseAnd();
    while (this.isPunct('||')) {
      this.pos++;
      const l = bool(left, '||');
      const r = bool(this.parseAnd(), '||');
      left = { type: 'bool', evaluate: (ctx) => l(ctx) === true || r(ctx) === true };
    }
    return left;
  }

  private parseAnd(): Node {
    let left = this.parseEquality();
    while (this.isPunct('&&')) {
      this.pos++;
      const l = bool(left, '&&');
      const r = bool(this.parseEquality(), '&&');
      left = { type: 'bool', evaluate: (ctx) => l(ctx) === true && r(ctx) === true };
    }
    return left;
  }

  private parseEquality(): Node {
    const left = this.parseRelational();
    if (!this.isPunct('==') && !this.isPunct('!=')) return left;
    const op = (this.peek() as { value: string }).value;
    this.pos++;
    const right = this.parseRelational();
    const comparable = (a: ExpressionType, b: ExpressionType) => a === b || a === 'null' || b === 'null';
    if (
      !comparable(left.type, right.type) ||
      !['string', 'int', 'bool', 'null'].includes(left.type) ||
      !['string', 'int', 'bool', 'null'].includes(right.type)
    ) {
      throw new ExpressionError(
        `cannot compare ${left.type} ${op} ${right.type} (cast context.Variables[…] with (string) first)`,
      );
    }
    const l = left.evaluate;
    const r = right.evaluate;
    const norm = (v: Value) => (v === undefined ? null : v);
    return op === '=='
      ? { type: 'bool', evaluate: (ctx) => norm(l(ctx)) === norm(r(ctx)) }
      : { type: 'bool', evaluate: (ctx) => norm(l(ctx)) !== norm(r(ctx)) };
  }

  private parseRelational(): Node {
    const left = this.parseAdditive();
    const t = this.peek();
    if (!(t?.kind === 'punct' && ['<', '<=', '>', '>='].includes(t.value))) return left;
    this.pos++;
    const right = this.parseAdditive();
    if (left.type !== 'int' || right.type !== 'int')
      throw new ExpressionError(`operator ${t.value} needs int operands, got ${left.type} and ${right.type}`);
    const l = left.evaluate;
    const r = right.evaluate;
    const cmp: Record<string, (a: number, b: number) => boolean> = {
      '<': (a, b) => a < b,
      '<=': (a, b) => a <= b,
      '>': (a, b) => a > b,
      '>=': (a, b) => a >= b,
    };
    const f = cmp[t.value]!;
    return { type: 'bool', evaluate: (ctx) => f(l(ctx) as number, r(ctx) as number) };
  }

  private parseAdditive(): Node {
    let left = this.parseUnary();
    while (this.isPunct('+')) {
      this.pos++;
      const right = this.parseUnary();
      const l = left.evaluate;
      const r = right.evaluate;
      if (left.type === 'int' && right.type === 'int') {
        left = { type: 'int', evaluate: (ctx) => ((l(ctx) as number) + (r(ctx) as number)) | 0 };
      } else if (left.type === 'string' || right.type === 'string') {
        for (const side of [left, right]) {
          if (!['string', 'int', 'bool', 'null', 'object'].includes(side.type))
            throw new ExpressionError(`cannot concatenate a ${side.type} to a string`);
        }
        left = { type: 'string', evaluate: (ctx) => expressionString(l(ctx)) + expressionString(r(ctx)) };
      } else {
        throw new ExpressionError(`operator + is not supported between ${left.type} and ${right.type}`);
      }
    }
    return left;
  }

  private parseUnary(): Node {
    if (this.isPunct('!')) {
      this.pos++;
      const inner = bool(this.parseUnary(), '!');
      return { type: 'bool', evaluate: (ctx) => inner(ctx) !== true };
    }
    return this.parsePostfix(this.parsePrimary());
  }

  private parsePrimary(): Node {
    const t = this.peek();
    if (t === undefined) throw new ExpressionError('unexpected end of expression');
    if (t.kind === 'string') {
      this.pos++;
      return { type: 'string', evaluate: () => t.value };
    }
    if (t.kind === 'int') {
      this.pos++;
      return { type: 'int', evaluate: () => t.value };
    }
    if (t.kind === 'name') {
      this.pos++;
      if (t.value === 'true' || t.value === 'false')
        return { type: 'bool', evaluate: () => t.value === 'true' };
      if (t.value === 'null') return { type: 'null', evaluate: () => null };
      if (t.value === 'context') return { type: 'context', evaluate: () => null };
      throw new ExpressionError(
        `unsupported name '${t.value}' (expressions start from context, or are literals)`,
      );
    }
    if (t.value === '(') {
      const cast = this.peek(1);
      if (cast?.kind === 'name' && this.isPunct(')', 2) && cast.value in CASTS) {
        this.pos += 3;
        const target = CASTS[cast.value]!;
        const operand = this.parsePostfix(this.parsePrimary());
        if (operand.type !== 'object' && operand.type !== target)
          throw new ExpressionError(`cannot cast ${operand.type} to ${cast.value}`);
        const inner = operand.evaluate;
        const check =
          target === 'jwt'
            ? (v: Value) => v === null || v === undefined || (typeof v === 'object' && 'claims' in v)
            : (v: Value) => v === null || v === undefined || typeof v === 'string';
        return {
          type: target,
          evaluate: (ctx) => {
            const v = inner(ctx);
            if (!check(v))
              throw new ExpressionError(`(${cast.value}) cast of a value that is not a ${cast.value}`);
            return v ?? null;
          },
        };
      }
      if (cast?.kind === 'name' && this.isPunct(')', 2) && cast.value !== 'context')
        throw new ExpressionError(
          `unsupported cast (${cast.value}) (supported: ${Object.keys(CASTS).join(', ')})`,
        );
      this.pos++;
      const inner = this.parseExpression();
      this.take(')');
      return inner;
    }
    throw new ExpressionError(`unexpected ${describe(t)}`);
  }

  private parsePostfix(node: Node): Node {
    for (;;) {
      if (this.isPunct('.') || this.isPunct('?.')) {
        this.pos++;
        const name = this.peek();
        if (name?.kind !== 'name')
          throw new ExpressionError(`expected a member name after '.', found ${describe(name)}`);
        this.pos++;
        if (this.isPunct('(')) {
          node = this.parseCall(node, name.value);
          continue;
        }
        const member = MEMBERS[node.type]?.[name.value];
        if (!member)
          throw new ExpressionError(
            `unsupported member ${typeName(node.type)}.${name.value}${supported(node.type)}`,
          );
        if (node.type === 'context' && name.value === 'Response') this.usesResponse = true;
        const target = node.evaluate;
        const isContext = node.type === 'context' || node.type === 'request' || node.type === 'url';
        node = {
          type: member.type,
          evaluate: (ctx) => {
            const t = isContext ? ({ ctx } as RequestView) : target(ctx);
            if (t === null || t === undefined) return null;
            const v = member.get(t, ctx);
            return v === undefined ? null : v;
          },
        };
        continue;
      }
      if (this.isPunct('[')) {
        this.pos++;
        if (node.type !== 'variables')
          throw new ExpressionError(
            `indexer [] is supported only on context.Variables, not on ${typeName(node.type)}`,
          );
        const key = this.parseExpression();
        if (key.type !== 'string') throw new ExpressionError('context.Variables[…] needs a string key');
        this.take(']');
        const k = key.evaluate;
        node = {
          type: 'object',
          evaluate: (ctx) => {
            const name = String(k(ctx));
            if (!ctx.variables.has(name))
              throw new ExpressionError(`context.Variables["${name}"]: no such variable`);
            return ctx.variables.get(name) ?? null;
          },
        };
        continue;
      }
      if (this.isPunct('(')) throw new ExpressionError(`${typeName(node.type)} is not callable`);
      return node;
    }
  }

  private parseCall(node: Node, name: string): Node {
    const method = METHODS[node.type]?.[name];
    if (!method)
      throw new ExpressionError(
        `unsupported method ${typeName(node.type)}.${name}(…)${supported(node.type)}`,
      );
    this.take('(');
    const args: Node[] = [];
    if (!this.isPunct(')')) {
      for (;;) {
        args.push(this.parseExpression());
        if (!this.isPunct(',')) break;
        this.pos++;
      }
    }
    this.take(')');
    const min = method.params.length - method.optional;
    if (args.length < min || args.length > method.params.length) {
      throw new ExpressionError(
        `${typeName(node.type)}.${name} takes ${min === method.params.length ? min : `${min}-${method.params.length}`} argument(s), got ${args.length}`,
      );
    }
    args.forEach((a, i) => {
      const want = method.params[i]!;
      if (a.type !== want && !(a.type === 'null' && want === 'string'))
        throw new ExpressionError(
          `argument ${i + 1} of ${typeName(node.type)}.${name} must be a ${want}, got ${a.type}`,
        );
    });
    const target = node.evaluate;
    const argEvals = args.map((a) => a.evaluate);
    return {
      type: method.returns,
      evaluate: (ctx) => {
        const t = target(ctx);
        if (t === null || t === undefined) return null;
        return method.call(
          t,
          argEvals.map((e) => e(ctx)),
          ctx,
        );
      },
    };
  }
}

function bool(node: Node, op: string): Evaluator {
  if (node.type !== 'bool') throw new ExpressionError(`operator ${op} needs bool operands, got ${node.type}`);
  return node.evaluate;
}

const TYPE_NAMES: Partial<Record<ExpressionType, string>> = {
  context: 'context',
  request: 'context.Request',
  response: 'context.Response',
  headers: 'Headers',
  subscription: 'context.Subscription',
  variables: 'context.Variables',
  jwt: 'Jwt',
  claims: 'Jwt.Claims',
  certificate: 'context.Request.Certificate',
  url: 'context.Request.Url',
  lasterror: 'context.LastError',
  query: 'context.Request.Url.Query',
};

function typeName(type: ExpressionType): string {
  return TYPE_NAMES[type] ?? type;
}

function supported(type: ExpressionType): string {
  const names = [
    ...Object.keys(MEMBERS[type] ?? {}),
    ...Object.keys(METHODS[type] ?? {}).map((m) => `${m}(…)`),
  ];
  return names.length ? ` (supported: ${names.join(', ')})` : '';
}
