export { startEmulator, type RunningEmulator } from './emulator';
export { DEFAULT_CLOCK_SKEW_SECONDS, type EmulatorOptions } from './emulator-options';
export { readEmulatorInfo, emulatorInfoPath, type EmulatorInfo } from './emulator-info';
export { EmulatorError, type EmulatorErrorCode } from './errors';
export { DEFAULT_TOKEN_LIFETIME, type TokenLifetime } from './access-tokens';
export { ASSERTION_TYPE } from './client-assertion-verifier';
export { GRAPH_APP_ID, GRAPH_RESOURCE, GRAPH_ROLE_IDS } from './directory';
export { statePath, STATE_FILE } from './state-store';
export { LOCK_FILE } from './state-dir-lock';
export { entraTimestamp, type EntraErrorBody, type OAuthErrorName } from './entra-errors';
export {
  certificateClientAssertion,
  GraphClient,
  GraphRequestError,
  type GraphCredentials,
  type ApplicationInput,
  type GraphApplication,
  type GraphAppRole,
  type GraphAppRoleAssignment,
  type GraphKeyCredential,
  type GraphPasswordCredential,
  type GraphServicePrincipal,
} from './graph-client';
export { provisionApiAndPartner, type ProvisionOptions, type ProvisionedApiAndPartner } from './provision';
export { createProofOfPossession, PROOF_AUDIENCE, type ProofOptions } from './proof-of-possession';
export { NO_FAULTS, type FaultSettings, type OutageMode } from './faults';
export { CLOCK_FILE, clockFilePath, removeStaleClockFile, type EmulatorClock } from './clock-route';
export { mintTestToken, TEST_TOKEN_CLAIM, type TestTokenOptions } from './test-tokens';
export {
  ARM_APP_ID,
  FIRST_PARTY_RESOURCES,
  KEY_VAULT_APP_ID,
  KEY_VAULT_RESOURCE,
  STORAGE_APP_ID,
  type FirstPartyResource,
} from './first-party';
export { SIGN_IN_LOG_CAPACITY, SignInLog, type SignInAttempt, type SignInRecord } from './sign-in-log';
