/**
 * The served API's policy files, compiled by the local gateway exactly as it will run them, before
 * anything is changed: a policy the gateway cannot run (well-formed XML, but an unknown policy,
 * a bad attribute, a named value that does not exist) stops the start like any other problem of
 * the topology file, instead of failing at "starting the gateway" after reconcile has applied.
 * The named values are stand-ins of the real ones' shape (the registration does not exist yet).
 */
import { loadPolicyDocument, OpenIdMetadataCache } from '@certflow/local-gateway';
import { apimNamedValues, TopologyError, type LoadedTopology, type TopologyApi } from '@certflow/topology';

const NO_ID = '00000000-0000-0000-0000-000000000000';

/** Throws TopologyError naming `apis[0].policy` / `apis[0].operations[j].policy` for each policy the gateway refuses. */
export function checkServedPolicies({ file, topology }: LoadedTopology): void {
  const api: TopologyApi | undefined = topology.apis[0];
  if (api === undefined) return;
  const opts = {
    namedValues: apimNamedValues(
      {
        name: api.name,
        objectId: NO_ID,
        appId: NO_ID,
        servicePrincipalId: NO_ID,
        identifierUri: api.identifierUri,
        roleIds: {},
      },
      'https://localhost',
      NO_ID,
    ),
    metadataCache: (url: string) => new OpenIdMetadataCache(url),
  };
  const problems: string[] = [];
  const load = (path: string, policyFile: string, parent?: ReturnType<typeof loadPolicyDocument>) => {
    try {
      return loadPolicyDocument(policyFile, opts, parent);
    } catch (err) {
      problems.push(`${path}: the local gateway cannot run it: ${(err as Error).message}`);
      return undefined;
    }
  };
  const parent = load('apis[0].policy', api.policy);
  api.operations.forEach((o, j) => load(`apis[0].operations[${j}].policy`, o.policy, parent));
  if (problems.length > 0) throw new TopologyError(file, problems);
}
