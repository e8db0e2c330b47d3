export * from './stack';
export * from './stack-file';
export * from './partner-credentials';
export * from './stack-process';
