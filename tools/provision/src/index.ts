export { runProvision, type ProvisionIo } from './provision';
export {
  parseProvisionOptions,
  UsageError,
  USAGE,
  DEFAULT_GRAPH_URL,
  DEFAULT_AUTHORITY_HOST,
  type ProvisionOptions,
  type CredentialKind,
} from './options';
export { createCredential, signIn, SignInError, GRAPH_SCOPE, type SignedIn } from './credential';
export { tenantGuid } from './tenant';
export {
  readPartnerCertificates,
  CertificateFileError,
  type PartnerCertificate,
} from './partner-certificates';
