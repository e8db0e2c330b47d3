/**
 * `node apps/api/dist/main.js`: configuration from the environment (see docs/architecture.md),
 * one stdout line `{"event":"listening","url":"http://127.0.0.1:PORT"}` once listening, JSON
 * logs on stderr; a bad configuration exits with status 1 and a message naming the variable.
 */
import { runApi } from './run-api';

async function main(): Promise<void> {
  const result = await runApi();
  if (result.exitCode !== 0) {
    process.exitCode = result.exitCode;
    return;
  }
  const stop = (signal: NodeJS.Signals) => {
    process.stderr.write(`${JSON.stringify({ event: 'stopping', signal })}\n`);
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
}

void main();
