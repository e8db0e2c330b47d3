/** The reconcile's result for people (the plan) and for API Management (the named values). */
import { printable } from './quote';
import type { Change, ChangeKind, ReconciledApi, ReconcileResult } from './reconcile-types';

const SIGN: Record<ChangeKind, string> = {
  create: '+',
  grant: '+',
  upload: '+',
  update: '~',
  adopt: '~',
  delete: '-',
  revoke: '-',
};

/**
 * One line per change (`+ create …`, `~ update …`, `- delete …`), then the warnings; or
 * `No changes: the directory matches <file>.` Values are quoted where the changes are described;
 * any control or bidirectional character left (e.g. from a name read from the directory) is
 * printed as an escape.
 */
export function formatChanges(result: ReconcileResult, topologyFile: string): string {
  const lines: string[] = [];
  if (result.changes.length === 0) lines.push(`No changes: the directory matches ${topologyFile}.`);
  else {
    const count = result.changes.length === 1 ? '1 change' : `${result.changes.length} changes`;
    lines.push(
      result.applied
        ? `Applied ${count} to bring the directory to ${topologyFile}:`
        : `Plan: ${count} to bring the directory to ${topologyFile} (nothing written):`,
    );
    lines.push(...changeLines(result.changes));
    lines.push(...grantees(result));
  }
  for (const warning of result.warnings) lines.push(`warning: ${warning}`);
  return lines.map(printable).join('\n');
}

/** One plan line per change (`  + create api orders: …`), escaped, for lists under another heading. */
export function changeLines(changes: readonly Change[]): string[] {
  return changes.map((c) => printable(`  ${SIGN[c.kind]} ${c.kind} ${c.subject}: ${c.detail}`));
}

/**
 * The existing registrations that get roles, found by their mark: a mark is a claim, not proof,
 * so the plan names each object for a reviewer to check.
 */
function grantees(result: ReconcileResult): string[] {
  const subjects = (kind: ChangeKind) =>
    new Set(result.changes.filter((c) => c.kind === kind).map((c) => c.subject));
  const granted = subjects('grant');
  const created = subjects('create');
  const found = result.partners.filter(
    (p) => granted.has(`partner ${p.name}`) && !created.has(`partner ${p.name}`) && p.objectId !== '',
  );
  if (found.length === 0) return [];
  return [
    'Roles go to these existing registrations, found by their certflow-topology mark (a mark is a claim, not proof: check each is yours):',
    ...found.map((p) => `  partner ${p.name}: object id ${p.objectId}, client id ${p.appId}`),
  ];
}

/** The APIM named values each API's policy needs: entra-instance, tenant-id, api-app-id, api-app-id-uri. */
export function apimNamedValues(
  api: ReconciledApi,
  entraInstance: string,
  tenantId: string,
): Record<string, string> {
  return {
    'entra-instance': entraInstance.replace(/\/+$/, ''),
    'tenant-id': tenantId,
    'api-app-id': api.appId,
    'api-app-id-uri': api.identifierUri,
  };
}
