/**
 * Step 1 of `npm start`: brings the emulator's directory to the topology file with the same
 * reconcile code `npm run provision` runs against a real tenant (apply and prune: the emulator's
 * directory belongs to the stack), after migrating state left by earlier versions, and removes
 * the key directories of partners that left the topology.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  type GraphRest,
  marksOf,
  quote,
  reconcileTopology,
  TOPOLOGY_TAG,
  type Adoptions,
  type GraphApp,
  type ReconcileResult,
  type Topology,
  type TopologyPartner,
} from '@certflow/topology';
import { directoryKeys, holdersOf, keyHolders } from './key-holders';

/** `<stateDir>/partners/<name>`: each partner's key pair, certificate and `partner.key-id`. */
export const PARTNERS_DIRECTORY = 'partners';
export const partnerDirectory = (stateDir: string, name: string): string =>
  join(stateDir, PARTNERS_DIRECTORY, name);

/**
 * Earlier versions (stack.json version 1) had one partner, registered as `contoso-partner`
 * with its keys in `<stateDir>/partner/`, and an API registration without the topology's mark.
 */
const LEGACY_PARTNER_DIRECTORY = 'partner';
const LEGACY_PARTNER_DISPLAY_NAME = 'contoso-partner';
const LEGACY_PARTNER_NAME = 'contoso';

/**
 * Moves the old single partner's directory to `partners/contoso/` in one rename, so a start
 * killed half-way leaves either the old or the new layout, never both. Returns what it did or
 * left, to be printed; throws (changing nothing) when both directories exist.
 */
export function migrateLegacyPartnerDirectory(stateDir: string, topology: Topology): string[] {
  const legacy = join(stateDir, LEGACY_PARTNER_DIRECTORY);
  if (!existsSync(legacy)) return [];
  if (!topology.partners.some((p) => p.name === LEGACY_PARTNER_NAME))
    return [
      `left ${legacy} (the keys of the earlier single partner): the topology has no partner "${LEGACY_PARTNER_NAME}" to take them over; delete the directory if they are no longer needed`,
    ];
  const target = partnerDirectory(stateDir, LEGACY_PARTNER_NAME);
  if (existsSync(target))
    throw new Error(
      `both ${legacy} (from an earlier version) and ${target} exist: keep the one whose certificate is registered, remove the other, and start again`,
    );
  mkdirSync(join(stateDir, PARTNERS_DIRECTORY), { recursive: true, mode: 0o700 });
  renameSync(legacy, target);
  return [`moved ${legacy} to ${target} (the keys of partner "${LEGACY_PARTNER_NAME}")`];
}

/** What migration reads of an application. */
type AppSummary = Pick<GraphApp, 'id' | 'appId' | 'displayName' | 'identifierUris' | 'tags'>;

const isMarked = (a: AppSummary): boolean => (a.tags ?? []).includes(TOPOLOGY_TAG);

export interface LegacyAdoptions {
  adopt: Adoptions;
  /** Registrations of earlier versions that were left alone, and why. */
  notes: string[];
}

/**
 * The unmarked registrations an earlier version created, to be adopted by reconcile rather than
 * duplicated: the API application holding a topology API's identifier URI (compared without
 * regard to case, as reconcile and Entra ID do), and `contoso-partner` as partner `contoso`.
 * Nothing is adopted for a name the directory already has a marked object for.
 */
export function legacyAdoptions(apps: readonly AppSummary[], topology: Topology): LegacyAdoptions {
  // Every mark any application carries (reconcile refuses an application with two before writing).
  const managed = new Set(apps.flatMap((a) => marksOf(a.tags).map((m) => `${m.kind} ${m.name}`)));
  const unmarked = apps.filter((a) => !isMarked(a));
  const result: LegacyAdoptions = { adopt: { apis: {}, partners: {} }, notes: [] };

  for (const api of topology.apis) {
    if (managed.has(`api ${api.name}`)) continue;
    const uri = api.identifierUri.toLowerCase();
    const old = unmarked.find((a) => (a.identifierUris ?? []).some((u) => u.toLowerCase() === uri));
    if (old) result.adopt.apis![api.name] = old.id;
  }
  const legacyPartner = unmarked.find((a) => a.displayName === LEGACY_PARTNER_DISPLAY_NAME);
  if (legacyPartner && !managed.has(`partner ${LEGACY_PARTNER_NAME}`)) {
    if (topology.partners.some((p) => p.name === LEGACY_PARTNER_NAME))
      result.adopt.partners![LEGACY_PARTNER_NAME] = legacyPartner.id;
    else
      result.notes.push(
        `left the registration ${LEGACY_PARTNER_DISPLAY_NAME} (appId ${legacyPartner.appId}) of an earlier version unmarked and untouched: ` +
          `the topology has no partner "${LEGACY_PARTNER_NAME}" to adopt it as; remove it in the portal if it is no longer needed`,
      );
  }
  return result;
}

export interface TopologySync {
  result: ReconcileResult;
  /** Migration notes: what was moved, adopted or left, and why. */
  notes: string[];
  /** Key directories removed because their partner left the topology. */
  removedDirectories: string[];
  /** Key directories of partners that left the topology, kept because a registration holds their certificate: why. */
  keptDirectories: string[];
}

/**
 * The key directories of partners no longer in the topology, split into those whose certificates
 * and keys no application of the directory holds (to be removed) and those kept, with why: an
 * application (marked or not, whatever its name) holds one of their certificates, or one of their
 * files cannot be read to tell. Read after reconcile, so a registration it deleted holds nothing.
 */
export async function leftoverKeyDirectories(
  graph: GraphRest,
  stateDir: string,
  topology: Topology,
): Promise<{ remove: string[]; keep: string[] }> {
  const root = join(stateDir, PARTNERS_DIRECTORY);
  const wanted = new Set(topology.partners.map((p) => p.name));
  const result = { remove: [] as string[], keep: [] as string[] };
  if (!existsSync(root)) return result;
  const leftovers = readdirSync(root, { withFileTypes: true }).filter(
    (e) => e.isDirectory() && !wanted.has(e.name),
  );
  if (leftovers.length === 0) return result;
  const apps = await keyHolders(graph);
  for (const { name } of leftovers) {
    const dir = join(root, name);
    const keys = directoryKeys(dir);
    const holders = holdersOf(keys, apps);
    const why =
      keys.unreadable.length > 0
        ? `${keys.unreadable.map(quote).join(', ')} cannot be read to compare with the registrations' certificates`
        : holders.length > 0
          ? `the registration${holders.length > 1 ? 's' : ''} ${holders.join(', ')} still hold${holders.length > 1 ? '' : 's'} its certificate`
          : undefined;
    if (why === undefined) result.remove.push(dir);
    else
      result.keep.push(
        `kept ${dir}: partner ${quote(name)} is not in the topology, but ${why}; delete the directory once no registration uses these keys`,
      );
  }
  return result;
}

/**
 * Reconciles the directory with the topology (apply, prune), then removes the key directories of
 * partners that left it, only where no application holds their certificates.
 */
export async function syncTopology(opts: {
  graph: GraphRest;
  topology: Topology;
  stateDir: string;
  /** The `.cer` of each partner, to be registered on its application. */
  certificate: (partner: TopologyPartner) => Buffer | undefined;
}): Promise<TopologySync> {
  let notes: string[] = [];
  const result = await reconcileTopology({
    graph: opts.graph,
    topology: opts.topology,
    apply: true,
    prune: true,
    // From the application list reconcile reads anyway: one list per start, not two.
    adopt: (apps) => {
      const legacy = legacyAdoptions(apps, opts.topology);
      notes = legacy.notes;
      return legacy.adopt;
    },
    certificate: opts.certificate,
  });
  const { remove, keep } = await leftoverKeyDirectories(opts.graph, opts.stateDir, opts.topology);
  for (const dir of remove) rmSync(dir, { recursive: true, force: true });
  return { result, notes, removedDirectories: remove, keptDirectories: keep };
}
