#!/usr/bin/env node
import { runCli } from './cli';

runCli(process.argv.slice(2), {
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
  onShutdown: (stop) => {
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  },
}).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`entra-emulator: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
