/**
 * Nest's logger as one JSON object per line on stderr, so that stdout carries only the
 * `listening` event other tools wait for. Never pass a token or a key to it. A line written
 * for a request adds its `traceId`, `spanId` and `requestId` (`requestContextOf(request)`).
 *
 * Without a `write` function, lines go to stderr in batches (`batchedLines`: every 100 ms or
 * 64 KiB, whole lines only), since the API writes an access line per request and a write per
 * line would be a system call per request; errors are written at once. `flush()` before a
 * planned exit; a process killed hard loses at most the last 100 ms of lines.
 */
import type { LoggerService } from '@nestjs/common';
import { batchedLines, streamWriter, type BatchedLines } from '@certflow/observability';

type Level = 'error' | 'warn' | 'info' | 'debug' | 'verbose' | 'fatal';

export class JsonLogger implements LoggerService {
  /** Takes one JSON line, without its newline. */
  private readonly push: (json: string) => void;
  private readonly batch: BatchedLines | undefined;

  /** `write` receives each line, newline included (tests, or any output of your own). */
  constructor(write?: (line: string) => void) {
    this.batch = write ? undefined : batchedLines(streamWriter(process.stderr), { name: 'api: log' });
    this.push = this.batch ? this.batch.push : (json) => write!(`${json}\n`);
  }

  /** Writes the lines still waiting in the batch. */
  flush(): Promise<void> {
    return this.batch?.flush() ?? Promise.resolve();
  }

  log(message: unknown, ...rest: unknown[]): void {
    this.emit('info', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.emit('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.emit('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.emit('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.emit('verbose', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]): void {
    this.emit('fatal', message, rest);
  }

  private emit(level: Level, message: unknown, rest: unknown[]): void {
    // Nest passes the context as the last string argument.
    const context = typeof rest[rest.length - 1] === 'string' ? (rest[rest.length - 1] as string) : undefined;
    const fields =
      typeof message === 'object' && message !== null && !(message instanceof Error)
        ? message
        : { message: String(message) };
    const stack = level === 'error' && rest.length >= 2 && typeof rest[0] === 'string' ? rest[0] : undefined;
    const entry = {
      time: new Date().toISOString(),
      level,
      ...(context ? { context } : {}),
      event: 'log',
      ...fields,
      ...(stack ? { stack } : {}),
    };
    this.push(JSON.stringify(entry));
    // Errors are written at once; warnings wait for the batch like the rest (a flood of refused
    // tokens logs a warning per request).
    if (level === 'error' || level === 'fatal') void this.flush();
  }
}
