/**
 * Brings a directory to the topology through Graph's REST API: finds what it manages by the
 * mark in the applications' tags, adopts unmarked registrations it is told to, removes marked
 * ones that left the file (only with prune), then reconciles each API and each partner.
 * Everything that would stop the run is checked before the first write, including marks that
 * cannot be trusted (see README: a mark is a claim, not proof). A failure during an apply is a
 * ReconcileError carrying the changes made before it.
 */
import { parseCertificate, type ParsedCertificate } from '@certflow/certs';
import { listed, quote } from './quote';
import { confirmations, federatedCredentialProblems } from './reconcile-confirm';
import { reconcileApi } from './reconcile-api';
import { reconcilePartner } from './reconcile-partner';
import {
  described,
  markOf,
  marksOf,
  ReconcileError,
  Run,
  TOPOLOGY_TAG,
  type GraphApp,
  type ReconciledApi,
  type ReconciledPartner,
  type ReconcileOptions,
  type ReconcileResult,
} from './reconcile-types';

type Kind = 'api' | 'partner';
const SELECT = 'id,appId,displayName,identifierUris,appRoles,tags,api,passwordCredentials,createdDateTime';
const NAME = /^[a-z][a-z0-9-]{0,39}$/;

/** A name read from a tag: as is when it could be a topology name, otherwise quoted. */
function shown(name: string): string {
  return NAME.test(name) ? name : quote(name);
}

function isMarked(app: GraphApp): boolean {
  return (app.tags ?? []).includes(TOPOLOGY_TAG);
}

/**
 * Marked applications by kind and name, and the marks that cannot be trusted: one mark on two
 * applications, two marks on one, client secrets (certflow never creates one).
 */
function managed(apps: GraphApp[]): { marked: Record<Kind, Map<string, GraphApp>>; problems: string[] } {
  const marked: Record<Kind, Map<string, GraphApp>> = { api: new Map(), partner: new Map() };
  const problems: string[] = [];
  for (const app of apps) {
    const marks = marksOf(app.tags);
    if (marks.length > 1) {
      problems.push(
        `${described(app)} carries ${marks.length} marks (${marks.map((m) => `${m.kind} ${shown(m.name)}`).join(', ')}); certflow marks an application once: remove the marks that are not its own`,
      );
      continue;
    }
    const [mark] = marks;
    if (mark === undefined) continue;
    const { kind, name } = mark;
    const first = marked[kind].get(name);
    if (first) {
      problems.push(
        `${kind} ${shown(name)}: two applications carry its mark, ${described(first)} and ${described(app)}; find out which one certflow created and remove the mark (tags) from the other`,
      );
      continue;
    }
    const secrets = (app.passwordCredentials ?? []).length;
    if (secrets > 0)
      problems.push(
        `${kind} ${shown(name)}: ${described(app)} carries its mark but has ${secrets === 1 ? 'a client secret' : `${secrets} client secrets`}; certflow never creates secrets, so it was not made by certflow or was changed since: find out who added them, then remove the secrets (or the mark) and run again`,
      );
    marked[kind].set(name, app);
  }
  return { marked, problems };
}

function certificatesOf(opts: ReconcileOptions): Map<string, ParsedCertificate> {
  const certificates = new Map<string, ParsedCertificate>();
  for (const partner of opts.topology.partners) {
    const cer = opts.certificate?.(partner);
    if (cer === undefined) continue;
    try {
      certificates.set(partner.name, parseCertificate(cer));
    } catch (err) {
      throw new Error(
        `partner ${partner.name}: the certificate to register is not usable: ${(err as Error).message}`,
      );
    }
  }
  return certificates;
}

export async function reconcileTopology(opts: ReconcileOptions): Promise<ReconcileResult> {
  const { topology } = opts;
  const run = new Run(opts.graph, opts.apply);
  const certificates = certificatesOf(opts);
  const apps = await opts.graph.list<GraphApp>(`/applications?$select=${SELECT}`, 'list the applications');
  const { marked, problems } = managed(apps);
  const adopt = typeof opts.adopt === 'function' ? opts.adopt(apps) : opts.adopt;
  const wanted: Record<Kind, Set<string>> = {
    api: new Set(topology.apis.map((a) => a.name)),
    partner: new Set(topology.partners.map((p) => p.name)),
  };

  // Adoptions: checked in full before anything is written.
  const adoptions: { kind: Kind; name: string; app: GraphApp }[] = [];
  for (const kind of ['api', 'partner'] as const) {
    for (const [name, objectId] of Object.entries((kind === 'api' ? adopt?.apis : adopt?.partners) ?? {})) {
      const app = apps.find((a) => a.id === objectId);
      const current = marked[kind].get(name);
      if (!wanted[kind].has(name))
        problems.push(`adopt ${kind} ${name}: the topology has no ${kind} "${name}"`);
      else if (app === undefined)
        problems.push(`adopt ${kind} ${name}: no application with object id ${objectId}`);
      else if (current?.id === app.id)
        continue; // adopted before
      else if (current)
        problems.push(`adopt ${kind} ${name}: ${described(current)} is already marked as ${kind} ${name}`);
      else if (isMarked(app))
        problems.push(
          `adopt ${kind} ${name}: ${described(app)} is already marked (${app.tags.map(quote).join(', ')})`,
        );
      else if (adoptions.some((a) => a.app.id === app.id))
        problems.push(`adopt ${kind} ${name}: ${described(app)} is to be adopted twice`);
      else adoptions.push({ kind, name, app });
    }
  }

  // Marked registrations no longer in the file.
  const leaving = (['api', 'partner'] as const).flatMap((kind) =>
    [...marked[kind]].filter(([name]) => !wanted[kind].has(name)).map(([name, app]) => ({ kind, name, app })),
  );
  const removedIds = new Set(opts.prune ? leaving.map((l) => l.app.id) : []);

  // An API is not created over an application that already holds its identifier URI.
  const blocked = new Set<string>();
  for (const api of topology.apis) {
    if (marked.api.has(api.name) || adoptions.some((a) => a.kind === 'api' && a.name === api.name)) continue;
    const holder = apps.find(
      (a) =>
        !removedIds.has(a.id) &&
        (a.identifierUris ?? []).some((u) => u.toLowerCase() === api.identifierUri.toLowerCase()),
    );
    if (holder === undefined) continue;
    blocked.add(api.name);
    const why = isMarked(holder)
      ? `it is marked for ${holder.tags
          .filter((t) => t.startsWith(`${TOPOLOGY_TAG}:`))
          .map(quote)
          .join(', ')}${opts.prune ? '' : ' (prune removes it if it left the topology)'}`
      : 'it is not marked as managed by certflow-topology, so it is left alone (adopt it to take it over)';
    (opts.apply ? problems : run.warnings).push(
      `api ${api.name}: not created: ${described(holder)} already has the identifier URI ${api.identifierUri}; ${why}`,
    );
  }
  // Service principals of the marked partners: a role being removed loses its assignments to them
  // first. A marked partner without one that is to get roles is refused: certflow creates both
  // together, so a bare application with the mark was most likely made by someone else.
  const markedPartners = new Map<string, string>();
  const partnerPrincipals = new Map<string, { app: GraphApp; servicePrincipalId: string }>();
  for (const [name, app] of marked.partner) {
    if (removedIds.has(app.id)) continue;
    const id = await run.servicePrincipalId(app.appId, `partner ${name}`);
    if (id !== undefined) {
      markedPartners.set(id, name);
      partnerPrincipals.set(name, { app, servicePrincipalId: id });
    } else if (
      Object.values(topology.partners.find((p) => p.name === name)?.roles ?? {}).some((r) => r.length > 0)
    )
      problems.push(
        `partner ${name}: ${described(app)} carries its mark but has no service principal, and the topology grants it roles; certflow creates both together, so it was not made by certflow (or a run stopped in between): check it, then delete it or remove its mark, and run again (a new registration is created)`,
      );
  }
  const staying = (['api', 'partner'] as const).flatMap((kind) =>
    [...marked[kind]]
      .filter(([, app]) => !removedIds.has(app.id))
      .map(([name, app]) => ({ kind, name, app })),
  );
  problems.push(...(await federatedCredentialProblems(run, staying)));
  const confirmation = await confirmations(run, opts, topology, partnerPrincipals, async () => {
    const ids = new Set<string>();
    for (const [name, app] of marked.api) {
      if (removedIds.has(app.id)) continue;
      const id = await run.servicePrincipalId(app.appId, `api ${name}`);
      if (id !== undefined) ids.add(id);
    }
    return ids;
  });
  problems.push(...confirmation.problems);
  run.warnings.push(...confirmation.warnings);
  if (problems.length > 0)
    throw new Error(
      `The directory cannot be brought to the topology; nothing was changed:\n  ${listed(problems).join('\n  ')}`,
    );
  try {
    return await write(opts, run, apps, marked, {
      adoptions,
      leaving,
      blocked,
      markedPartners,
      certificates,
    });
  } catch (err) {
    if (opts.apply) throw new ReconcileError(run.applied, err);
    throw err;
  }
}

interface Checked {
  adoptions: { kind: Kind; name: string; app: GraphApp }[];
  leaving: { kind: Kind; name: string; app: GraphApp }[];
  blocked: Set<string>;
  markedPartners: Map<string, string>;
  certificates: Map<string, ParsedCertificate>;
}

/** The writes (or, in a plan, the changes they would be), once everything is checked. */
async function write(
  opts: ReconcileOptions,
  run: Run,
  apps: GraphApp[],
  marked: Record<Kind, Map<string, GraphApp>>,
  { adoptions, leaving, blocked, markedPartners, certificates }: Checked,
): Promise<ReconcileResult> {
  const { topology } = opts;

  for (const { kind, name, app } of adoptions) {
    run.change('adopt', `${kind} ${name}`, `takes over ${described(app)} and marks it`);
    if (opts.apply)
      await run.graph.patch(
        `/applications/${encodeURIComponent(app.id)}`,
        { tags: [...(app.tags ?? []), ...markOf(kind, name)] },
        `mark ${described(app)} as ${kind} ${name}`,
      );
    marked[kind].set(name, app);
  }

  const removed: ReconcileResult['removed'] = [];
  for (const { kind, name, app } of leaving) {
    if (!opts.prune) {
      run.warnings.push(
        `${kind} ${name}: ${described(app)} is no longer in the topology; left in place (prune removes it)`,
      );
      continue;
    }
    run.change(
      'delete',
      `${kind} ${name}`,
      `${described(app)} is no longer in the topology; with its service principal, role assignments and certificates`,
    );
    if (opts.apply)
      await run.graph.delete(`/applications/${encodeURIComponent(app.id)}`, `delete ${kind} ${name}`);
    removed.push({ kind, name, objectId: app.id });
  }

  const apis: ReconciledApi[] = [];
  for (const api of topology.apis) {
    if (
      /^https:/i.test(api.identifierUri) &&
      !blocked.has(api.name) &&
      !(marked.api.get(api.name)?.identifierUris ?? []).includes(api.identifierUri)
    )
      run.warnings.push(
        `api ${api.name}: Microsoft Graph accepts the identifier URI ${quote(api.identifierUri)} only if its host is a domain verified in the tenant (the local emulator does not check); api:// URIs have no such condition`,
      );
    apis.push(
      blocked.has(api.name)
        ? {
            name: api.name,
            objectId: '',
            appId: '',
            servicePrincipalId: '',
            identifierUri: api.identifierUri,
            roleIds: {},
          }
        : await reconcileApi(run, api, marked.api.get(api.name), markedPartners),
    );
  }
  const usable = new Map(apis.filter((a) => !blocked.has(a.name)).map((a) => [a.name, a]));
  const partners: ReconciledPartner[] = [];
  for (const partner of topology.partners) {
    const app = marked.partner.get(partner.name);
    if (app === undefined) {
      const namesake = apps.find((a) => !isMarked(a) && a.displayName === partner.displayName);
      if (namesake)
        run.warnings.push(
          `partner ${partner.name}: an unmarked application ${described(namesake)} has the same display name; a new one is created beside it (adopt it to take it over)`,
        );
    }
    partners.push(await reconcilePartner(run, partner, app, usable, certificates.get(partner.name)));
  }
  return { applied: opts.apply, changes: run.changes, warnings: run.warnings, apis, partners, removed };
}
