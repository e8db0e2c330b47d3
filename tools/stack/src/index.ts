export * from './stack';
export * from './stack-file';
export * from './partner-credentials';
export * from './stack-process';
export {
  runJsonCommand,
  startService,
  stopChild,
  type ChildService,
  type CommandResult,
} from './child-service';
export { appEntryPoint, workspaceRoot } from './workspace';
