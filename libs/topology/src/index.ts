export * from './types';
export { TopologyError } from './topology-error';
export { printable, quote } from './quote';
export { HttpsTextError, httpsText, type HttpsAnswer, type HttpsTextOptions } from './https-text';
export { customKeyIdentifierThumbprints } from './reconcile-partner';
export { DEFAULT_TOPOLOGY_FILE, loadTopology, parseTopology } from './load-topology';
export { TOPOLOGY_SCHEMA_FILE } from './schema-errors';
export { GraphCallError, GraphPermissionError, GraphRest, type GraphRestOptions } from './graph-rest';
export {
  marksOf,
  ReconcileError,
  TOPOLOGY_TAG,
  type Adoptions,
  type Change,
  type ChangeKind,
  type GraphApp,
  type Mark,
  type ReconciledApi,
  type ReconciledPartner,
  type ReconcileOptions,
  type ReconcileResult,
} from './reconcile-types';
export { reconcileTopology } from './reconcile';
export { apimNamedValues, changeLines, formatChanges } from './plan-format';
