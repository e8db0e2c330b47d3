/**
 * Log lines written in batches. A write per line was the largest single cost of the gateway
 * under load (a system call, and for files a callback, per request); this collects lines and
 * hands them to `write` together: every `flushMs` (100 ms), or at once when 64 KiB are pending,
 * as nginx's `access_log … buffer= flush=` does.
 *
 * - Each chunk is whole lines: a process killed hard loses at most the last `flushMs` of
 *   lines, never half a line. Call `flush()` before a planned exit.
 * - If the output stalls (a blocked pipe, a full disk), at most 16 MiB wait for it; lines past
 *   that are dropped, and how many is written to stderr once it recovers.
 * - A failed write is reported on stderr, never thrown at the code that logged.
 */
export interface BatchedLines {
  /** Queues one line (without its newline). */
  push(line: string): void;
  /** Writes what is pending; resolves when everything handed over so far is written. */
  flush(): Promise<void>;
}

export interface BatchedLinesOptions {
  /** Names the log in the messages about dropped lines and failed writes, e.g. `local-gateway: access log`. */
  name: string;
  flushMs?: number;
  /** Pending bytes that trigger a write before the timer (64 KiB). */
  bufferBytes?: number;
  /** Bytes waiting for a stalled output, at most (16 MiB). */
  backlogBytes?: number;
}

export const DEFAULT_FLUSH_MS = 100;

export function batchedLines(
  write: (chunk: string) => Promise<void> | void,
  {
    name,
    flushMs = DEFAULT_FLUSH_MS,
    bufferBytes = 64 * 1024,
    backlogBytes = 16 * 1024 * 1024,
  }: BatchedLinesOptions,
): BatchedLines {
  let pending: string[] = [];
  let bytes = 0;
  /** Bytes handed to `write` and not written yet. */
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
        process.stderr.write(`${name}: ${dropped} lines dropped: the log output did not keep up\n`);
        dropped = 0;
      })
      .catch((err: unknown) => {
        process.stderr.write(`${name}: write failed: ${(err as Error).message}\n`);
      })
      .finally(() => (unwritten -= size));
    return written;
  };
  const push = (line: string): void => {
    if (unwritten + bytes > backlogBytes) {
      dropped++;
      return;
    }
    pending.push(line);
    bytes += line.length;
    if (bytes >= bufferBytes) void flush();
    else timer ??= setTimeout(flush, flushMs).unref();
  };
  return { push, flush };
}

/** A stream's `write` as a promise that settles once the stream accepts more (for `batchedLines`). */
export function streamWriter(stream: NodeJS.WritableStream): (chunk: string) => Promise<void> {
  return (chunk) => new Promise<void>((done) => (stream.write(chunk) ? done() : stream.once('drain', done)));
}
