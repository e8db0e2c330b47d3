/**
 * One API: its application (created, or updated in place), its service principal, and its app
 * roles the way Graph requires: matched by value, changed in place, and removed only after
 * their assignments to managed partners are revoked and the role is disabled.
 */
import { randomUUID } from 'node:crypto';
import {
  markOf,
  type GraphApp,
  type GraphAppRole,
  type GraphAssignment,
  type ReconciledApi,
  type Run,
} from './reconcile-types';
import { quote as quoted } from './quote';
import type { TopologyApi, TopologyAppRole } from './types';

const enc = encodeURIComponent;

function newRole(role: TopologyAppRole): GraphAppRole {
  return {
    id: randomUUID(),
    allowedMemberTypes: ['Application'],
    isEnabled: true,
    value: role.value,
    displayName: role.displayName,
    description: role.description,
  };
}

/** The writable properties of a role as Graph returned it (`origin` is read-only). */
function writable(role: GraphAppRole): GraphAppRole {
  const { id, value, displayName, description, allowedMemberTypes, isEnabled } = role;
  return { id, value, displayName, description, allowedMemberTypes, isEnabled };
}

/** The API as the topology wants it. `markedPartners`: service principal id → partner name. */
export async function reconcileApi(
  run: Run,
  api: TopologyApi,
  app: GraphApp | undefined,
  markedPartners: Map<string, string>,
): Promise<ReconciledApi> {
  const subject = `api ${api.name}`;
  const result = { name: api.name, identifierUri: api.identifierUri };
  if (app === undefined) {
    const roles = api.appRoles.map(newRole);
    run.change(
      'create',
      subject,
      `${quoted(api.displayName)}, ${quoted(api.identifierUri)}, v${api.accessTokenVersion} tokens, roles ${roles.map((r) => r.value).join(', ') || 'none'}`,
    );
    if (!run.apply)
      return { ...result, objectId: '', appId: '', servicePrincipalId: '', roleIds: idsOf(roles, true) };
    const created = await run.createApplication<GraphApp>(
      {
        displayName: api.displayName,
        signInAudience: 'AzureADMyOrg',
        identifierUris: [api.identifierUri],
        appRoles: roles,
        api: { requestedAccessTokenVersion: api.accessTokenVersion },
        tags: markOf('api', api.name),
      },
      `create ${subject}`,
    );
    const servicePrincipalId = await run.createServicePrincipal(created.appId, subject);
    return {
      ...result,
      objectId: created.id,
      appId: created.appId,
      servicePrincipalId,
      roleIds: idsOf(roles),
    };
  }

  const servicePrincipalId = await run.ensureServicePrincipal(app.appId, subject);
  const patch: Record<string, unknown> = {};
  const what: string[] = [];
  if (app.displayName !== api.displayName) {
    patch.displayName = api.displayName;
    what.push(`displayName ${quoted(app.displayName)} → ${quoted(api.displayName)}`);
  }
  if (app.identifierUris.length !== 1 || app.identifierUris[0] !== api.identifierUri) {
    patch.identifierUris = [api.identifierUri];
    what.push(
      `identifierUris ${app.identifierUris.map(quoted).join(', ') || 'none'} → ${quoted(api.identifierUri)}`,
    );
  }
  const version = app.api?.requestedAccessTokenVersion ?? 1; // null means v1 in Entra
  if (version !== api.accessTokenVersion) {
    patch.api = { requestedAccessTokenVersion: api.accessTokenVersion };
    what.push(`token version ${version} → ${api.accessTokenVersion}`);
  }
  if (what.length > 0) {
    run.change('update', subject, what.join('; '));
    if (run.apply) await run.graph.patch(`/applications/${enc(app.id)}`, patch, `update ${subject}`);
  }
  const roleIds = await reconcileRoles(run, api, app, servicePrincipalId, markedPartners);
  return { ...result, objectId: app.id, appId: app.appId, servicePrincipalId, roleIds };
}

function idsOf(roles: GraphAppRole[], planned = false): Record<string, string> {
  return Object.fromEntries(roles.map((r) => [r.value, planned ? '' : r.id]));
}

async function reconcileRoles(
  run: Run,
  api: TopologyApi,
  app: GraphApp,
  servicePrincipalId: string,
  markedPartners: Map<string, string>,
): Promise<Record<string, string>> {
  const subjectOf = (value: string) => `role ${value} of api ${api.name}`;
  const next: GraphAppRole[] = [];
  const added = new Set<string>();
  let changed = false;
  for (const wanted of api.appRoles) {
    const have = app.appRoles.find((r) => r.value === wanted.value);
    if (have === undefined) {
      const role = newRole(wanted);
      next.push(role);
      added.add(role.id);
      changed = true;
      run.change(
        'create',
        subjectOf(wanted.value),
        `${quoted(wanted.displayName)}: ${quoted(wanted.description)}`,
      );
      continue;
    }
    const what: string[] = [];
    if (have.displayName !== wanted.displayName)
      what.push(`displayName ${quoted(have.displayName)} → ${quoted(wanted.displayName)}`);
    if (have.description !== wanted.description)
      what.push(`description ${quoted(have.description)} → ${quoted(wanted.description)}`);
    if (!have.isEnabled) what.push('enabled again');
    if (!have.allowedMemberTypes.includes('Application')) what.push('assignable to applications');
    if (what.length > 0) {
      changed = true;
      run.change('update', subjectOf(wanted.value), what.join('; '));
    }
    next.push({
      ...writable(have),
      displayName: wanted.displayName,
      description: wanted.description,
      isEnabled: true,
      allowedMemberTypes: have.allowedMemberTypes.includes('Application')
        ? have.allowedMemberTypes
        : [...have.allowedMemberTypes, 'Application'],
    });
  }

  const removed = app.appRoles.filter((r) => !api.appRoles.some((w) => w.value === r.value));
  if (removed.length > 0 && servicePrincipalId !== '') {
    const assignments = await run.graph.list<GraphAssignment>(
      `/servicePrincipals/${enc(servicePrincipalId)}/appRoleAssignedTo`,
      `list the role assignments of api ${api.name}`,
    );
    for (const role of removed) {
      for (const a of assignments.filter(
        (a) => a.appRoleId === role.id && markedPartners.has(a.principalId),
      )) {
        run.revoked.add(a.id);
        run.change(
          'revoke',
          `partner ${markedPartners.get(a.principalId)!}`,
          `${role.value} on api ${api.name} (the role is removed)`,
        );
        if (run.apply)
          await run.graph.delete(
            `/servicePrincipals/${enc(servicePrincipalId)}/appRoleAssignedTo/${enc(a.id)}`,
            `revoke ${role.value} on api ${api.name} from partner ${markedPartners.get(a.principalId)!}`,
          );
      }
    }
  }
  // Two writes, two changes: if the second fails, the first is reported as done and no more.
  const path = `/applications/${enc(app.id)}`;
  const enabled = removed.filter((r) => r.isEnabled);
  for (const role of enabled)
    run.change('update', subjectOf(role.value), 'disabled (Graph removes only disabled roles)');
  if (run.apply && enabled.length > 0)
    await run.graph.patch(
      path,
      { appRoles: [...next, ...removed.map((r) => ({ ...writable(r), isEnabled: false }))] },
      `disable the removed roles of api ${api.name}`,
    );
  for (const role of removed)
    run.change(
      'delete',
      subjectOf(role.value),
      role.isEnabled ? 'disabled, then removed' : 'removed (it was disabled)',
    );
  if (run.apply && (changed || removed.length > 0))
    await run.graph.patch(path, { appRoles: next }, `update the roles of api ${api.name}`);
  return Object.fromEntries(next.map((r) => [r.value, !run.apply && added.has(r.id) ? '' : r.id]));
}
