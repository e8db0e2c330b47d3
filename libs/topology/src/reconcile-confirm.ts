/**
 * Checks of marked applications that need more than their tags: credentials certflow never
 * adds (federated identity credentials), and the first roles granted to a partner registration
 * that existed before this run. A mark is a claim anyone with Application.ReadWrite.All can
 * make; when nothing managed has ever granted the application a role, only a person can tell
 * whether it is the partner's, so such a grant waits for an explicit confirmation.
 */
import { GraphCallError } from './graph-rest';
import { quote } from './quote';
import {
  described,
  type GraphApp,
  type GraphAssignment,
  type ReconcileOptions,
  type Run,
} from './reconcile-types';
import type { Topology } from './types';

const enc = encodeURIComponent;

/**
 * A problem per marked application holding federated identity credentials (certflow never adds
 * one; whoever did can sign in as it). Real Graph lists them at
 * `/applications/{id}/federatedIdentityCredentials`; a Graph without that relationship (the
 * local emulator answers 400 or 404) is not checked.
 */
export async function federatedCredentialProblems(
  run: Run,
  marked: { kind: string; name: string; app: GraphApp }[],
): Promise<string[]> {
  const problems: string[] = [];
  for (const { kind, name, app } of marked) {
    let found: unknown[];
    try {
      found = await run.graph.list<unknown>(
        `/applications/${enc(app.id)}/federatedIdentityCredentials`,
        `read the federated identity credentials of ${kind} ${name}`,
      );
    } catch (err) {
      if (err instanceof GraphCallError && (err.status === 400 || err.status === 404)) return problems;
      throw err;
    }
    if (found.length > 0)
      problems.push(
        `${kind} ${name}: ${described(app)} carries its mark but has ${found.length === 1 ? 'a federated identity credential' : `${found.length} federated identity credentials`}; certflow never creates them, so it was not made by certflow or was changed since: find out who added them, then remove them (or the mark) and run again`,
      );
  }
  return problems;
}

export interface Confirmation {
  /** Stop the run before any write. */
  problems: string[];
  /** Shown in a plan. */
  warnings: string[];
}

/**
 * `opts.confirm` checked against the marked partners, and, with `requireConfirmation`, every
 * marked partner that is to get roles although no managed API has ever granted it one.
 * `partners`: name → marked application with its service principal id; `apiPrincipals`: the
 * service principal ids of the marked APIs.
 */
export async function confirmations(
  run: Run,
  opts: Pick<ReconcileOptions, 'confirm' | 'requireConfirmation' | 'apply'>,
  topology: Topology,
  partners: Map<string, { app: GraphApp; servicePrincipalId: string }>,
  apiPrincipals: () => Promise<Set<string>>,
): Promise<Confirmation> {
  const problems: string[] = [];
  const warnings: string[] = [];
  const confirm = opts.confirm ?? {};
  for (const [name, objectId] of Object.entries(confirm)) {
    const app = partners.get(name)?.app;
    if (!topology.partners.some((p) => p.name === name))
      problems.push(`confirm partner ${quote(name)}: the topology has no partner ${quote(name)}`);
    else if (app === undefined)
      problems.push(
        `confirm partner ${name}: no existing application with a service principal is marked as partner ${name}, so there is nothing to confirm`,
      );
    else if (app.id.toLowerCase() !== objectId.toLowerCase())
      problems.push(
        `confirm partner ${name}: the application marked as partner ${name} is ${described(app)}, not object id ${objectId}; check which one is yours`,
      );
  }
  if (!opts.requireConfirmation) return { problems, warnings };

  let managed: Set<string> | undefined;
  for (const partner of topology.partners) {
    const found = partners.get(partner.name);
    if (found === undefined || !Object.values(partner.roles).some((r) => r.length > 0)) continue;
    const { app, servicePrincipalId } = found;
    if (confirm[partner.name]?.toLowerCase() === app.id.toLowerCase()) continue;
    const apis = (managed ??= await apiPrincipals());
    const held = await run.graph.list<GraphAssignment>(
      `/servicePrincipals/${enc(servicePrincipalId)}/appRoleAssignments`,
      `list the role assignments of partner ${partner.name}`,
    );
    if (held.some((a) => apis.has(a.resourceId))) continue;
    const flag = `--confirm partner:${partner.name}=${app.id}`;
    const what = `partner ${partner.name}: its first roles would go to ${described(app)}, client id ${app.appId}, created ${app.createdDateTime ?? 'at an unknown time'}, which carries the partner's mark but holds no role of any managed API; a mark is a claim, not proof: check in the portal that this is the registration made for ${partner.name}`;
    if (opts.apply) problems.push(`${what}, then run again with ${flag}`);
    else warnings.push(`${what}; to apply, confirm it with ${flag}`);
  }
  return { problems, warnings };
}
