/**
 * `<set-header name exists-action="override|skip|append|delete"><value>…</value></set-header>`.
 * In `inbound` it changes the request sent to the backend; in `outbound` and `on-error` (and
 * inside `return-response`) the response sent to the caller. Values are literal text (named
 * values allowed) or a policy expression `@(…)` from the supported subset (policy-expression.ts),
 * evaluated per request; an expression that fails at run time raises an APIM error (500).
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { ApimError } from './apim-errors';
import type { PolicyContext, PolicySection, PolicyStatement } from './policy-context';
import { CompiledExpression, ExpressionError, expressionString } from './policy-expression';
import { ElementReader, PolicyElement } from './policy-xml';

export type ExistsAction = 'override' | 'skip' | 'append' | 'delete';

/** Headers whose value the gateway computes itself; a policy may not set them. */
const MANAGED_HEADERS = new Set([
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
]);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export interface HeaderChange {
  name: string;
  action: ExistsAction;
  values: Array<string | CompiledExpression>;
}

export function compileHeaderChange(file: string, element: PolicyElement): HeaderChange {
  const r = new ElementReader(file, element);
  r.allowAttributes(['id', 'name', 'exists-action']);
  r.noText();
  r.allowChildren(['value']);
  const name = r.required('name').trim().toLowerCase();
  if (!TOKEN.test(name)) throw r.error(`'${name}' is not a valid header name`);
  if (MANAGED_HEADERS.has(name))
    throw r.error(`header ${name} is managed by the gateway and cannot be set by a policy`);
  const action = (r.optional('exists-action') ?? 'override').trim() as ExistsAction;
  if (!['override', 'skip', 'append', 'delete'].includes(action)) {
    throw r.error(`attribute exists-action must be override, skip, append or delete, got '${action}'`);
  }
  const values = element.children.map((v) => {
    const vr = new ElementReader(file, v);
    vr.allowAttributes([]);
    vr.noChildren();
    const expression = vr.expression(v.text, 'text', ['string', 'int', 'bool', 'null', 'object']);
    if (expression) return expression;
    if (/[\r\n]/.test(v.text)) throw vr.error('a header value must not contain line breaks');
    return v.text;
  });
  if (action === 'delete' && values.length > 0) throw r.error('exists-action="delete" takes no <value>');
  if (action !== 'delete' && values.length === 0) throw r.error('at least one <value> is required');
  return { name, action, values };
}

/** Evaluates expression values; a failure or a value with a line break is an APIM error (500). */
export function resolveValues(
  values: ReadonlyArray<string | CompiledExpression>,
  ctx: PolicyContext,
  source: string,
): string[] {
  return values.map((v) => {
    if (typeof v === 'string') return v;
    let value: string;
    try {
      value = expressionString(v.evaluate(ctx));
    } catch (err) {
      if (err instanceof ExpressionError)
        throw new ApimError(500, 'Expression evaluation failed.', source, 'ExpressionValueEvaluationFailure');
      throw err;
    }
    // Only what a header value may hold (Node would throw on anything else, outside on-error).
    if (/[^\t\x20-\x7e\x80-\xff]/.test(value))
      throw new ApimError(500, 'Expression evaluation failed.', source, 'ExpressionValueEvaluationFailure');
    return value;
  });
}

export function applyHeaderChange(
  headers: OutgoingHttpHeaders,
  change: HeaderChange,
  ctx: PolicyContext,
  source = 'set-header',
): void {
  const existing = headers[change.name];
  switch (change.action) {
    case 'delete':
      delete headers[change.name];
      return;
    case 'skip':
      if (existing === undefined) headers[change.name] = valueOf(resolveValues(change.values, ctx, source));
      return;
    case 'override':
      headers[change.name] = valueOf(resolveValues(change.values, ctx, source));
      return;
    case 'append': {
      const before = existing === undefined ? [] : Array.isArray(existing) ? existing : [String(existing)];
      headers[change.name] = valueOf([...before, ...resolveValues(change.values, ctx, source)]);
      return;
    }
  }
}

function valueOf(values: string[]): string | string[] {
  return values.length === 1 ? values[0]! : values;
}

export function compileSetHeader(
  file: string,
  element: PolicyElement,
  section: PolicySection,
): PolicyStatement {
  if (section === 'backend')
    throw new ElementReader(file, element).error('set-header is not supported in the backend section');
  const change = compileHeaderChange(file, element);
  return {
    name: 'set-header',
    line: element.line,
    execute(ctx: PolicyContext): void {
      if (ctx.section === 'inbound') applyHeaderChange(ctx.request.headers, change, ctx);
      else if (ctx.response) applyHeaderChange(ctx.response.headers, change, ctx);
    },
  };
}
