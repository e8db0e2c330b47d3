/** @certflow/partner-worker: the partner's CLI and HTTP facade over @certflow/partner-client. */
export { runCli, USAGE, UsageError, type CliIo } from './cli';
export * from './metrics';
export * from './worker';
export * from './facade';
