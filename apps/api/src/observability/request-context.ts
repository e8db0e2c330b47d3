/**
 * The request a log line is written for: its W3C trace context (the gateway's trace continued,
 * or a new one) and its request id, which is the trace id (one id, not two unrelated ones; it
 * is also the `x-request-id` of the response). Kept in an AsyncLocalStorage so that every
 * logger call made while serving the request (guards, filters, handlers) can add them.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface RequestContext {
  readonly traceId: string;
  readonly spanId: string;
  readonly requestId: string;
}

export const REQUEST_ID_HEADER = 'x-request-id';

const storage = new AsyncLocalStorage<RequestContext>();

/** The context of the request being served, if any. */
export function currentRequestContext(): RequestContext | undefined {
  return storage.getStore();
}

/** Runs `next` (and whatever it starts) inside `context`. */
export function runInRequestContext(context: RequestContext, next: () => void): void {
  storage.run(context, next);
}
