export * from './stack';
export { API_LOG, GATEWAY_ACCESS_LOG } from './call-narration';
export * from './stack-file';
export * from './partner-credentials';
export * from './stack-process';
export { partnerDirectory, PARTNERS_DIRECTORY } from './topology-sync';
export { PARTNER_KEY_ID_FILE } from './partners';
export {
  runJsonCommand,
  startService,
  stopChild,
  type ChildService,
  type CommandResult,
  type ServiceOptions,
} from './child-service';
export { appEntryPoint, workspaceRoot } from './workspace';
