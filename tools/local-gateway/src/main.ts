/** `node tools/local-gateway/dist/main.js --state-dir D --policy FILE --backend URL …` (see cli.ts). */
import { runCli } from './cli';

runCli(process.argv.slice(2), {
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
}).then(
  ({ exitCode, gateway }) => {
    if (!gateway) {
      process.exitCode = exitCode;
      return;
    }
    const stop = (): void => {
      gateway.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  },
  (err: unknown) => {
    process.stderr.write(`local-gateway: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
