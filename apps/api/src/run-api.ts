/**
 * What `main.ts` does, with the environment and output streams passed in so tests can run it:
 * start from the environment and print `{"event":"listening","url":…}` as the only stdout line,
 * or report a bad configuration (naming the variable) on stderr and give exit status 1.
 */
import { clockNotice, type EnvironmentClock } from '@certflow/clock';
import { JsonLogger } from './logging/json-logger';
import { loadApiConfig } from './config/api-config';
import { ConfigError } from './config/config-error';
import { RunningApi, startApi } from './api-app';

export interface ProcessOutput {
  stdout: (line: string) => void;
  stderr: (line: string) => void;
}

const PROCESS_OUTPUT: ProcessOutput = {
  stdout: (line) => process.stdout.write(line),
  stderr: (line) => process.stderr.write(line),
};

export type RunApiResult = { exitCode: 0; api: RunningApi } | { exitCode: 1; error: Error };

export async function runApi(
  env: NodeJS.ProcessEnv = process.env,
  output: ProcessOutput = PROCESS_OUTPUT,
): Promise<RunApiResult> {
  // The process's own stderr gets its lines in batches; any other output, line by line.
  const logger = output === PROCESS_OUTPUT ? new JsonLogger() : new JsonLogger(output.stderr);
  let clock: EnvironmentClock | undefined;
  try {
    const config = loadApiConfig(env, {
      onClockError: (err) => logger.warn({ event: 'clock_file_unreadable', message: err.message }),
    });
    clock = config.clock;
    const notice = clockNotice(clock);
    if (notice) logger.log({ event: 'clock_shifted', offsetMs: clock.offsetMs, message: notice });
    const api = await startApi(config, { logger });
    output.stdout(`${JSON.stringify({ event: 'listening', url: api.url })}\n`);
    const close = async (): Promise<void> => {
      await api.close();
      config.clock.close();
      await logger.flush();
    };
    return { exitCode: 0, api: { ...api, close } };
  } catch (err) {
    clock?.close();
    await logger.flush();
    const error = err instanceof Error ? err : new Error(String(err));
    const variable = error instanceof ConfigError ? { variable: error.variable } : {};
    output.stderr(`${JSON.stringify({ event: 'startup_failed', ...variable, message: error.message })}\n`);
    return { exitCode: 1, error };
  }
}
