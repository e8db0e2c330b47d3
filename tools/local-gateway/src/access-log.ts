/**
 * One JSON line per request. Built from an allow-list of fields: no request headers and no
 * query string are ever logged, so neither the Authorization header nor a token passed as a
 * query parameter can end up in the log.
 */
import { open } from 'node:fs/promises';

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

export const DEFAULT_ACCESS_LOG_FLUSH_MS = 100;
const ACCESS_LOG_BUFFER_BYTES = 64 * 1024;
/** Lines waiting for a stalled output, at most; past it new lines are dropped and counted on stderr. */
const ACCESS_LOG_BACKLOG_BYTES = 16 * 1024 * 1024;

/**
 * Collects log lines and hands them to `write` together: every `flushMs` (100 ms), or at once
 * when 64 KiB are pending, as nginx's `access_log … buffer= flush=` does. A write per request
 * was the largest single cost of the gateway under load (a file write and its callback for every
 * line). Each chunk is whole lines; a process killed hard loses at most the last `flushMs` of
 * lines, never half a line. If the output stalls (a blocked pipe, a full disk), at most 16 MiB
 * wait for it; lines past that are dropped, and how many is written to stderr once it recovers.
 */
export function bufferedAccessLog(
  write: (chunk: string) => Promise<void> | void,
  flushMs = DEFAULT_ACCESS_LOG_FLUSH_MS,
): BufferedAccessLog {
  let pending: string[] = [];
  let bytes = 0;
  /** Bytes handed to `write` and not written yet: when the output stalls, lines are dropped past a bound. */
  let unwritten = 0;
  let dropped = 0;
  let timer: NodeJS.Timeout | undefined;
  let written: Promise<void> = Promise.resolve();
  const flush = (): Promise<void> => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0) return written;
    const chunk = `${pending.join('\n')}\n`;
    const size = bytes;
    pending = [];
    bytes = 0;
    unwritten += size;
    written = written
      .then(() => write(chunk))
      .then(() => {
        if (dropped === 0) return;
        process.stderr.write(
          `local-gateway: ${dropped} access-log lines dropped: the log output did not keep up\n`,
        );
        dropped = 0;
      })
      .catch((err: unknown) => {
        process.stderr.write(`local-gateway: access log write failed: ${(err as Error).message}\n`);
      })
      .finally(() => (unwritten -= size));
    return written;
  };
  const sink: AccessLogSink = (entry) => {
    const line = JSON.stringify(entry);
    if (unwritten + bytes > ACCESS_LOG_BACKLOG_BYTES) {
      dropped++;
      return;
    }
    pending.push(line);
    bytes += line.length;
    if (bytes >= ACCESS_LOG_BUFFER_BYTES) void flush();
    else timer ??= setTimeout(flush, flushMs).unref();
  };
  return { sink, flush };
}

/** Buffered JSON lines on stdout: the gateway's default access log. */
export function stdoutAccessLog(): BufferedAccessLog {
  return bufferedAccessLog(
    (chunk) =>
      new Promise<void>((done) =>
        process.stdout.write(chunk) ? done() : process.stdout.once('drain', done),
      ),
  );
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
