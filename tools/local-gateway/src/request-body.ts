/**
 * The request body, read completely before the backend is called. Two reasons:
 *
 * - Framing. What goes to the backend is exactly the bytes the gateway read, sent with its own
 *   `Content-Length`: whatever framing the client used (chunked on a GET, a `Content-Length`
 *   named in `Connection`), nothing it wrote can reach the backend's connection as a further
 *   request.
 * - Fairness. A client that trickles its body holds only its own connection and the bytes it
 *   sent, never one of the pooled backend connections everybody else needs. The whole body has
 *   `timeoutMs` to arrive (408 after that), and all bodies being read at once share one memory
 *   budget (503 with `Retry-After` when it is spent), so slow clients cannot exhaust memory either.
 */
import type { IncomingMessage } from 'node:http';
import { MALFORMED_BODY, malformedBodyOf } from './client-errors';

export const DEFAULT_BODY_TIMEOUT_MS = 10_000;
/** All request bodies being read at one time, together. */
export const DEFAULT_BODY_MEMORY_BYTES = 64 * 1024 * 1024;

export type BodyFailureKind = 'too-large' | 'timeout' | 'over-budget' | 'malformed' | 'aborted';

export class BodyFailure extends Error {
  constructor(
    readonly kind: BodyFailureKind,
    message: string,
    /** For `malformed`: `AmbiguousFraming` or `MalformedRequest`. */
    readonly reason?: string,
    /** For `malformed`: the status the parser's error is answered with. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'BodyFailure';
  }
}

/** Why a body read ended early: the parser found the body malformed, or the client left. */
function endedEarly(req: IncomingMessage): BodyFailure {
  const malformed = malformedBodyOf(req);
  return malformed
    ? new BodyFailure('malformed', malformed.message, malformed.reason, malformed.status)
    : new BodyFailure('aborted', 'The client closed the connection.');
}

/** Bytes held by bodies in progress, shared by every request of one gateway. */
export class BodyMemoryBudget {
  private used = 0;

  constructor(readonly limitBytes: number) {}

  get usedBytes(): number {
    return this.used;
  }

  tryTake(bytes: number): boolean {
    if (this.used + bytes > this.limitBytes) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }
}

export interface ReadBodyOptions {
  maxBytes: number;
  timeoutMs: number;
  budget: BodyMemoryBudget;
}

/** What a request without a body reads. */
export const NO_BODY: ReadBody = { bytes: Buffer.alloc(0), release: () => undefined };

/** True when the request's framing says it has a body (`Content-Length` > 0 or chunked). */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** A body read whole, and still counted in the memory budget until `release()`. */
export interface ReadBody {
  bytes: Buffer;
  /** Gives its bytes back to the budget; call once the backend request is written or abandoned. */
  release(): void;
}

/**
 * Reads the whole body. Its bytes stay counted in the budget after reading, until the caller
 * releases them: a body waiting for a backend connection holds memory as much as one being read.
 */
export function readBody(req: IncomingMessage, opts: ReadBodyOptions): Promise<ReadBody> {
  if (!hasBody(req)) return Promise.resolve(NO_BODY);
  if (req.destroyed || malformedBodyOf(req)) return Promise.reject(endedEarly(req));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let taken = 0;
    const finish = (failure?: BodyFailure): void => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      req.off(MALFORMED_BODY, onMalformed);
      if (failure) {
        opts.budget.give(taken);
        req.pause(); // the connection is closed after the answer: read no more of it
        reject(failure);
        return;
      }
      let held = taken;
      resolve({
        bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, taken),
        release: () => {
          opts.budget.give(held);
          held = 0;
        },
      });
    };
    const onData = (chunk: Buffer): void => {
      if (taken + chunk.length > opts.maxBytes) {
        finish(
          new BodyFailure(
            'too-large',
            `The request body is larger than the limit of ${opts.maxBytes} bytes.`,
          ),
        );
        return;
      }
      if (!opts.budget.tryTake(chunk.length)) {
        finish(
          new BodyFailure(
            'over-budget',
            'The gateway is reading too many request bodies at once; retry shortly.',
          ),
        );
        return;
      }
      taken += chunk.length;
      chunks.push(chunk);
    };
    const onEnd = (): void => finish();
    const onClose = (): void => {
      if (!req.complete) finish(endedEarly(req));
    };
    const onMalformed = (): void => finish(endedEarly(req));
    const timer = setTimeout(
      () =>
        finish(
          new BodyFailure('timeout', `The request body was not received within ${opts.timeoutMs / 1000} s.`),
        ),
      opts.timeoutMs,
    );
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
    req.on(MALFORMED_BODY, onMalformed);
  });
}
