export * from './trace-context';
export * from './prometheus';
