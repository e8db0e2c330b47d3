/** Copies of the repository's topology file for tests that start the stack with another one. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_TOPOLOGY_FILE } from '@certflow/topology';
import { workspaceRoot } from './workspace';

export interface TopologyJson {
  apis: {
    name: string;
    appRoles: { value: string; description?: string }[];
    policy: string;
    [key: string]: unknown;
  }[];
  partners: { name: string; displayName: string; roles: Record<string, string[]>; [key: string]: unknown }[];
  [key: string]: unknown;
}

/** The repository's topology, its policy paths made absolute so that a copy works from anywhere. */
export function defaultTopologyJson(): TopologyJson {
  const root = workspaceRoot();
  const data = JSON.parse(readFileSync(join(root, DEFAULT_TOPOLOGY_FILE), 'utf8')) as TopologyJson;
  delete data.$schema;
  for (const api of data.apis) api.policy = join(root, api.policy);
  return data;
}

/** Writes `data` (or text as it is) to `<dir>/<name>` and returns its path. */
export function writeTopology(dir: string, name: string, data: TopologyJson | string): string {
  const path = join(dir, name);
  writeFileSync(path, typeof data === 'string' ? data : JSON.stringify(data, null, 2));
  return path;
}
