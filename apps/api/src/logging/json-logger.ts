/**
 * Nest's logger as one JSON object per line on stderr, so that stdout carries only the
 * `listening` event other tools wait for. Never pass a token or a key to it. A line written
 * for a request adds its `traceId`, `spanId` and `requestId` (`requestContextOf(request)`).
 */
import type { LoggerService } from '@nestjs/common';
import { batchedLines, streamWriter, type BatchedLines } from '@certflow/observability';

type Level = 'error' | 'warn' | 'info' | 'debug' | 'verbose' | 'fatal';

export class JsonLogger implements LoggerService {
  private readonly write: (line: string) => void;
  private readonly batch: BatchedLines | undefined;

  /** `write` receives each line, newline included (tests, or any output of your own). */
  constructor(write?: (line: string) => void) {
    if (write) {
      this.write = write;
      this.batch = undefined;
    } else {
      const batch = batchedLines(streamWriter(process.stderr), { name: 'api: log' });
      this.batch = batch;
      this.write = (line) => batch.push(line.slice(0, -1));
    }
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
    this.write(`${JSON.stringify(entry)}\n`);
    if (level === 'warn' || level === 'error' || level === 'fatal') void this.flush();
  }
}
