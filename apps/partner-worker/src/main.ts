#!/usr/bin/env node
/** Entry point: `node apps/partner-worker/dist/main.js <command>` (see cli.ts, or run with `help`). */
import { runCli } from './cli';

// serve and run stop gracefully on the first SIGTERM/SIGINT; a second one ends the process at once.
const stop = new AbortController();
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stop.signal.aborted) process.exit(130);
    stop.abort();
  });
}

function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk: string) => (text += chunk));
    process.stdin.on('end', () => resolve(text));
    process.stdin.on('error', reject);
  });
}

runCli(process.argv.slice(2), {
  env: process.env,
  cwd: process.cwd(),
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
  readStdin,
  stop: stop.signal,
}).then(
  (code) => {
    process.exitCode = code;
    // Nothing must keep a finished command alive (e.g. the signal handlers above).
    process.removeAllListeners('SIGTERM').removeAllListeners('SIGINT');
  },
  (err: unknown) => {
    process.stderr.write(`partner-worker: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
