export * from './redis-server';
export * from './partner-test-servers';
export * from './softhsm';
export * from './load-generators';
