export * from './trace-context';
export * from './prometheus';
export * from './batched-lines';
