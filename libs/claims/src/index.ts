export * from './errors';
export * from './guid';
export * from './app-principal';
export * from './access-token-claims';
export * from './parse-access-token-claims';
export * from './verified-token-cache';
