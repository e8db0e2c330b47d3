/**
 * The request a log line is written for: its W3C trace context (the gateway's trace continued,
 * or a new one) and its request id, which is the trace id (one id, not two unrelated ones; it
 * is also the `x-request-id` of the response). Kept on the request object, and added to a log
 * line by whoever writes it while serving the request (access line, refusals, errors). No
 * AsyncLocalStorage: on Node 20 it makes every promise of the process more expensive.
 */
export interface RequestContext {
  readonly traceId: string;
  readonly spanId: string;
  /** The caller's span (the gateway's), when the request carried a valid `traceparent`. */
  readonly parentSpanId?: string;
  readonly requestId: string;
}

export const REQUEST_ID_HEADER = 'x-request-id';

/** Where a request keeps its context: a Fastify request decoration (declared once, so requests keep one shape). */
export const REQUEST_CONTEXT = Symbol('certflow.requestContext');

interface WithContext {
  [REQUEST_CONTEXT]?: RequestContext | null;
}

export function setRequestContext(request: object, context: RequestContext): void {
  (request as WithContext)[REQUEST_CONTEXT] = context;
}

/** The context of a request (Fastify's request object), once its first hook has run. */
export function requestContextOf(request: object): RequestContext | undefined {
  return (request as WithContext)[REQUEST_CONTEXT] ?? undefined;
}
