/**
 * Copies of the repository's topology file for tests that start the stack with another one, and
 * the emulator's Graph for tests of step 1's pieces.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphClient, startEmulator } from '@certflow/entra-emulator';
import { DEFAULT_TOPOLOGY_FILE, GraphRest } from '@certflow/topology';
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

/** Runs `work` with an emulator on `stateDir`, a Graph client of it and Graph's REST API through that client; closes all three after. */
export async function withEmulatorGraph<T>(
  stateDir: string,
  work: (graph: GraphRest, client: GraphClient) => Promise<T>,
): Promise<T> {
  const emulator = await startEmulator({ stateDir, port: 0 });
  const client = await GraphClient.connect(emulator);
  const graph = new GraphRest({
    baseUrl: emulator.graphUrl,
    token: () => client.accessToken(),
    ca: readFileSync(emulator.caCertificatePath),
  });
  try {
    return await work(graph, client);
  } finally {
    graph.close();
    client.close();
    await emulator.close();
  }
}
