/** @certflow/partner-worker: the partner's side of the certificate client-credentials flow. */
export * from './config';
export * from './certificate-store';
export * from './https-network-client';
export * from './certificate-token-client';
export * from './api-client';
export * from './token-cache';
export * from './shared-token-cache';
export * from './rotation';
export { runCli, USAGE, UsageError, type CliIo } from './cli';
export * from './metrics';
export * from './credential-watcher';
export * from './worker';
export * from './facade';
