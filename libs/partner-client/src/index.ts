/** @certflow/partner-client: a partner's certificate token client, its caches, and its credential's lifecycle. */
export * from './pipeline';
export * from './config';
export * from './certificate-store';
export { CURRENT_LINK, GENERATIONS_DIR, isGenerationName } from './generations';
export * from './certificate-summary';
export * from './certificate-token-client';
export * from './https-network-client';
export * from './api-client';
export * from './token-cache';
export * from './shared-token-cache';
export * from './token-store';
export * from './token-stores';
export { MemoryTokenStore } from './memory-token-store';
export { RedisTokenStore } from './redis-token-store';
export * from './credential-watcher';
export * from './rotation';
export * from './graph-rotation';
