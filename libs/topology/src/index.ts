export * from './types';
export { TopologyError } from './topology-error';
export { DEFAULT_TOPOLOGY_FILE, loadTopology, parseTopology } from './load-topology';
export { TOPOLOGY_SCHEMA_FILE } from './schema-errors';
export { GraphCallError, GraphPermissionError, GraphRest, type GraphRestOptions } from './graph-rest';
