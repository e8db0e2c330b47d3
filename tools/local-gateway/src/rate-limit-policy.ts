/**
 * `<rate-limit-by-key calls renewal-period counter-key [increment-condition] [increment-count]
 *   [retry-after-header-name] [retry-after-variable-name] [remaining-calls-header-name]
 *   [remaining-calls-variable-name] [total-calls-header-name] />` (inbound only).
 *
 * - Sliding window of `renewal-period` seconds (1–300) per `counter-key` value; one counter per
 *   key across the whole policy (APIM: "across all scopes"), whatever the element's `calls`.
 * - `counter-key` and `increment-condition` may be policy expressions (policy-expression.ts).
 * - A request is refused with 429 `Rate limit is exceeded. Try again in N seconds.` and
 *   `Retry-After: N` (or the configured header) when the window already holds `calls`.
 *   Refused requests are not counted. A false increment-condition still checks the limit but
 *   does not count the request.
 * - An increment-condition that reads `context.Response` (e.g. `@(context.Response.StatusCode
 *   == 200)`) is evaluated once the response status is known; the request is counted then.
 * - remaining/total headers go on the response the caller gets (also on a 429).
 * - Counter store unavailable (Redis down): fail-open, see rate-limit-store.ts.
 */
import { ApimError } from './apim-errors';
import type { PolicyContext, PolicyStatement } from './policy-context';
import { CompiledExpression, ExpressionError, expressionString } from './policy-expression';
import { ElementReader, PolicyElement } from './policy-xml';
import { RateLimitStore, RateLimitStoreUnavailable } from './rate-limit-store';

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export interface RateLimitDeps {
  file: string;
  store: RateLimitStore;
  /** Called when the store fails and the request is let through (fail-open). */
  onStoreUnavailable(err: RateLimitStoreUnavailable): void;
}

export function compileRateLimitByKey(element: PolicyElement, deps: RateLimitDeps): PolicyStatement {
  const r = new ElementReader(deps.file, element);
  r.allowAttributes([
    'id',
    'calls',
    'renewal-period',
    'counter-key',
    'increment-condition',
    'increment-count',
    'retry-after-header-name',
    'retry-after-variable-name',
    'remaining-calls-header-name',
    'remaining-calls-variable-name',
    'total-calls-header-name',
  ]);
  r.noChildren();
  r.noText();
  r.required('calls');
  r.required('renewal-period');
  const calls = r.integer('calls', 0, 1, 2_147_483_647);
  const periodMs = r.integer('renewal-period', 0, 1, 300) * 1000;
  const incrementCount = r.integer('increment-count', 1, 1, 2_147_483_647);
  const keySource = r.required('counter-key');
  const keyExpression = r.expression(keySource, 'attribute counter-key', [
    'string',
    'int',
    'bool',
    'null',
    'object',
  ]);
  const conditionSource = r.optional('increment-condition');
  const condition = r.expression(conditionSource, 'attribute increment-condition', ['bool']);
  if (conditionSource !== undefined && !condition) {
    const literal = conditionSource.trim().toLowerCase();
    if (literal !== 'true' && literal !== 'false')
      throw r.error(
        `attribute increment-condition must be true, false or a boolean @(…) expression, got '${conditionSource}'`,
      );
  }
  const literalCondition =
    conditionSource === undefined || condition ? true : conditionSource.trim().toLowerCase() === 'true';
  const header = (attr: string, fallback?: string): string | undefined => {
    const v = r.optional(attr)?.trim() ?? fallback;
    if (v !== undefined && !TOKEN.test(v))
      throw r.error(`attribute ${attr}: '${v}' is not a valid header name`);
    return v?.toLowerCase();
  };
  const variable = (attr: string): string | undefined => {
    const v = r.optional(attr)?.trim();
    if (v !== undefined && v === '') throw r.error(`attribute ${attr} must not be empty`);
    return v;
  };
  const config: RateLimitConfig = {
    calls,
    periodMs,
    incrementCount,
    key: keyExpression ?? keySource,
    condition,
    literalCondition,
    retryAfterHeader: header('retry-after-header-name', 'Retry-After')!,
    retryAfterVariable: variable('retry-after-variable-name'),
    remainingHeader: header('remaining-calls-header-name'),
    remainingVariable: variable('remaining-calls-variable-name'),
    totalHeader: header('total-calls-header-name'),
  };
  return new RateLimitByKey(element.line, config, deps);
}

interface RateLimitConfig {
  calls: number;
  periodMs: number;
  incrementCount: number;
  key: string | CompiledExpression;
  condition: CompiledExpression | undefined;
  literalCondition: boolean;
  retryAfterHeader: string;
  retryAfterVariable: string | undefined;
  remainingHeader: string | undefined;
  remainingVariable: string | undefined;
  totalHeader: string | undefined;
}

class RateLimitByKey implements PolicyStatement {
  readonly name = 'rate-limit-by-key';
  constructor(
    readonly line: number,
    private readonly config: RateLimitConfig,
    private readonly deps: RateLimitDeps,
  ) {}

  private evaluate(ctx: PolicyContext, expression: CompiledExpression): unknown {
    try {
      return expression.evaluate(ctx);
    } catch (err) {
      if (err instanceof ExpressionError)
        throw new ApimError(
          500,
          'Expression evaluation failed.',
          this.name,
          'ExpressionValueEvaluationFailure',
        );
      throw err;
    }
  }

  async execute(ctx: PolicyContext): Promise<void> {
    const c = this.config;
    const key = typeof c.key === 'string' ? c.key : expressionString(this.evaluate(ctx, c.key));
    const deferred = c.condition?.usesResponse === true;
    const countNow = deferred
      ? false
      : c.condition
        ? this.evaluate(ctx, c.condition) === true
        : c.literalCondition;
    let decision;
    try {
      decision = await this.deps.store.hit(
        key,
        c.calls,
        c.periodMs,
        countNow ? c.incrementCount : 0,
        ctx.now(),
      );
    } catch (err) {
      if (!(err instanceof RateLimitStoreUnavailable)) throw err;
      this.deps.onStoreUnavailable(err);
      return; // fail-open
    }
    if (c.totalHeader) setResponseHeader(ctx, c.totalHeader, String(c.calls));
    if (!decision.allowed) {
      const seconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
      setResponseHeader(ctx, c.retryAfterHeader, String(seconds));
      if (c.retryAfterVariable) ctx.variables.set(c.retryAfterVariable, seconds);
      if (c.remainingHeader) setResponseHeader(ctx, c.remainingHeader, '0');
      if (c.remainingVariable) ctx.variables.set(c.remainingVariable, 0);
      throw new ApimError(
        429,
        `Rate limit is exceeded. Try again in ${seconds} seconds.`,
        this.name,
        'RateLimitExceeded',
      );
    }
    this.remaining(ctx, decision.used);
    if (deferred) {
      ctx.afterResponse?.push(async (after) => {
        if (this.evaluate(after, c.condition!) !== true) return;
        try {
          this.remaining(after, await this.deps.store.add(key, c.periodMs, c.incrementCount, after.now()));
        } catch (err) {
          if (!(err instanceof RateLimitStoreUnavailable)) throw err;
          this.deps.onStoreUnavailable(err);
        }
      });
    }
  }

  private remaining(ctx: PolicyContext, used: number): void {
    const remaining = Math.max(0, this.config.calls - used);
    if (this.config.remainingHeader) setResponseHeader(ctx, this.config.remainingHeader, String(remaining));
    if (this.config.remainingVariable) ctx.variables.set(this.config.remainingVariable, remaining);
  }
}

function setResponseHeader(ctx: PolicyContext, name: string, value: string): void {
  if (ctx.responseHeaders) ctx.responseHeaders[name] = value;
  if (ctx.response && ctx.section !== 'inbound') ctx.response.headers[name] = value;
}
