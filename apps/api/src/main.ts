/**
 * `node apps/api/dist/main.js`: configuration from the environment (see docs/architecture.md),
 * one stdout line `{"event":"listening","url":"http://127.0.0.1:PORT"}` once listening, JSON
 * logs on stderr; a bad configuration exits with status 1 and a message naming the variable.
 * With CERTFLOW_EXIT_ON_STDIN_END=1 (set by `npm start`, which gives it a pipe as stdin) it
 * stops when stdin ends: the process that started it is gone, even if it was killed outright.
 */
import { runApi } from './run-api';

const EXIT_ON_STDIN_END = 'CERTFLOW_EXIT_ON_STDIN_END';

async function main(): Promise<void> {
  const exitOnStdinEnd = process.env[EXIT_ON_STDIN_END];
  if (exitOnStdinEnd !== undefined && exitOnStdinEnd !== '' && exitOnStdinEnd !== '1') {
    const message = `${EXIT_ON_STDIN_END} must be 1 or unset, got ${JSON.stringify(exitOnStdinEnd)}`;
    process.stderr.write(
      `${JSON.stringify({ event: 'startup_failed', variable: EXIT_ON_STDIN_END, message })}\n`,
    );
    process.exitCode = 1;
    return;
  }
  const result = await runApi();
  if (result.exitCode !== 0) {
    process.exitCode = result.exitCode;
    return;
  }
  let stopping = false;
  const stop = (why: NodeJS.Signals | 'stdin-end') => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(
      `${JSON.stringify(why === 'stdin-end' ? { event: 'stopping', reason: 'stdin ended' } : { event: 'stopping', signal: why })}\n`,
    );
    result.api.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`${JSON.stringify({ event: 'stop_failed', message: String(err) })}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  if (exitOnStdinEnd === '1') process.stdin.once('end', () => stop('stdin-end')).resume();
}

void main();
