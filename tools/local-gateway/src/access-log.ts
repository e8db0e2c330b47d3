/**
 * One JSON line per request. Built from an allow-list of fields: no request headers and no
 * query string are ever logged, so neither the Authorization header nor a token passed as a
 * query parameter can end up in the log.
 */
import { open } from 'node:fs/promises';
import { batchedLines, DEFAULT_FLUSH_MS, streamWriter } from '@certflow/observability';

/** What the policy pipeline decided. */
export type PolicyOutcome =
  /** health probe: no policy runs */
  | 'none'
  /** inbound passed, the request was forwarded */
  | 'forwarded'
  /** a policy failed (validate-jwt …): the caller got an error */
  | 'rejected'
  /** return-response answered */
  | 'returned'
  /** the gateway itself refused the request (body too large) or the backend failed */
  | 'gateway-error';

export interface AccessLogEntry {
  event: 'request';
  time: string;
  method: string;
  /** The normalized path (request-target.ts), without the query string (it may carry a token); '' when the request could not be parsed. */
  path: string;
  status: number;
  durationMs: number;
  policy: PolicyOutcome;
  /**
   * W3C trace id: the caller's `traceparent` continued, or a new trace. A forwarded request
   * carried it to the backend in `traceparent` and `X-AppGW-Trace-Id`.
   */
  traceId: string;
  /** The gateway's span id: the parent id in the `traceparent` the backend received. */
  spanId: string;
  /** The caller's span id, when the request carried a valid `traceparent`. */
  parentSpanId?: string;
  /** `LastError.Source` / `Reason` when something failed, e.g. validate-jwt / TokenExpired. */
  errorSource?: string;
  errorReason?: string;
  /** true when the client went away before the response was complete. */
  aborted?: boolean;
}

export type AccessLogSink = (entry: AccessLogEntry) => void;

/** An access log whose lines are written in batches; `flush()` writes what is pending. */
export interface BufferedAccessLog {
  sink: AccessLogSink;
  flush(): Promise<void>;
}

/**
 * Access-log lines written in batches (`batchedLines` of @certflow/observability): every
 * `flushMs`, or at once past 64 KiB; whole lines only; at most 16 MiB wait for a stalled output,
 * and lines past that are dropped and counted on stderr.
 */
export function bufferedAccessLog(
  write: (chunk: string) => Promise<void> | void,
  flushMs = DEFAULT_FLUSH_MS,
): BufferedAccessLog {
  const lines = batchedLines(write, { name: 'local-gateway: access log', flushMs });
  return { sink: (entry) => lines.push(JSON.stringify(entry)), flush: lines.flush };
}

/** Buffered JSON lines on stdout: the gateway's default access log. */
export function stdoutAccessLog(): BufferedAccessLog {
  return bufferedAccessLog(streamWriter(process.stdout));
}

/** Buffered JSON lines appended to `path` (created with mode 0600); `close()` flushes, then closes the file. */
export async function fileAccessLog(path: string): Promise<BufferedAccessLog & { close(): Promise<void> }> {
  const file = await open(path, 'a', 0o600);
  const log = bufferedAccessLog(async (chunk) => {
    await file.write(chunk);
  });
  return {
    ...log,
    close: async () => {
      await log.flush();
      await file.close();
    },
  };
}
