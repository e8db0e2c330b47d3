export * from './errors';
export * from './files';
export * from './certificate';
export * from './generate';
export * from './development-ca';
export * from './formats';
