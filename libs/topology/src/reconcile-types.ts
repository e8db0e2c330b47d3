/** The reconcile's public types, the mark it puts on what it manages, and the Graph shapes it reads. */
import { GraphCallError, type GraphRest } from './graph-rest';
import { quote } from './quote';
import type { Topology, TopologyPartner } from './types';

/**
 * Tag on every application reconcile manages: `certflow-topology`, plus
 * `certflow-topology:api:<name>` / `certflow-topology:partner:<name>`. Objects without it are
 * never changed or removed.
 */
export const TOPOLOGY_TAG = 'certflow-topology';

export function markOf(kind: 'api' | 'partner', name: string): string[] {
  return [TOPOLOGY_TAG, `${TOPOLOGY_TAG}:${kind}:${name}`];
}

/** What an application's tags say it is: an api or a partner of the topology, by name. */
export interface Mark {
  kind: 'api' | 'partner';
  name: string;
}

/**
 * Every mark in an application's tags, in tag order ([] when `certflow-topology` itself is
 * missing). More than one means the application cannot be trusted to be any of them; whoever
 * reads tags (reconcile, the local stack) reads them with this.
 */
export function marksOf(tags: readonly string[] | null | undefined): Mark[] {
  if (!(tags ?? []).includes(TOPOLOGY_TAG)) return [];
  return (tags ?? []).flatMap((tag): Mark[] => {
    for (const kind of ['api', 'partner'] as const) {
      const prefix = `${TOPOLOGY_TAG}:${kind}:`;
      if (tag.startsWith(prefix)) return [{ kind, name: tag.slice(prefix.length) }];
    }
    return [];
  });
}

export interface ReconcileOptions {
  graph: GraphRest;
  topology: Topology;
  /** false: only plan; nothing is written. */
  apply: boolean;
  /** Delete marked registrations (apis/partners) that are no longer in the topology. */
  prune: boolean;
  /**
   * name → application object id of an UNMARKED registration to take over and mark (migration);
   * or a function that picks them from the applications reconcile lists anyway.
   */
  adopt?: Adoptions | ((applications: readonly GraphApp[]) => Adoptions);
  /** The partner's public certificate (DER .cer) to make sure is registered on its application. */
  certificate?: (partner: TopologyPartner) => Buffer | undefined;
  /**
   * A marked partner application that existed before this run, holds no role of any managed API
   * and is now to get roles, is granted them only when listed in `confirm` with its object id: a
   * plan warns (naming the application), an apply stops before any write. Default false (the
   * local stack, whose directory only it writes); `npm run provision` sets it.
   */
  requireConfirmation?: boolean;
  /** partner name → object id of its marked application, confirmed by a person (see requireConfirmation). */
  confirm?: Record<string, string>;
}

export type ChangeKind = 'create' | 'update' | 'delete' | 'grant' | 'revoke' | 'upload' | 'adopt';

/** subject e.g. `api orders`, `role Orders.Write of api orders`, `partner fabrikam`; detail: what and why. */
export interface Change {
  kind: ChangeKind;
  subject: string;
  detail: string;
}

export interface ReconciledApi {
  name: string;
  objectId: string;
  appId: string;
  servicePrincipalId: string;
  identifierUri: string;
  /** role value → app role id */
  roleIds: Record<string, string>;
}

export interface ReconciledPartner {
  name: string;
  objectId: string;
  appId: string;
  servicePrincipalId: string;
  /** keyId of the registered certificate given by `certificate()`, when one was given. */
  certificateKeyId?: string;
}

export interface ReconcileResult {
  applied: boolean;
  changes: Change[];
  /** Left alone: unmarked objects in the way, removals skipped without prune, … */
  warnings: string[];
  /** In topology order. In a plan, objects not yet created have ids ''. */
  apis: ReconciledApi[];
  partners: ReconciledPartner[];
  /** Marked registrations removed (or that a plan would remove). */
  removed: { kind: 'api' | 'partner'; name: string; objectId: string }[];
}

// ---- Graph shapes (the properties reconcile reads and writes) ----

export interface GraphAppRole {
  id: string;
  value: string;
  displayName: string;
  description: string;
  allowedMemberTypes: string[];
  isEnabled: boolean;
}

/** Unmarked registrations to adopt: topology name → application object id. */
export interface Adoptions {
  apis?: Record<string, string>;
  partners?: Record<string, string>;
}

export interface GraphApp {
  id: string;
  appId: string;
  displayName: string;
  identifierUris: string[];
  appRoles: GraphAppRole[];
  tags: string[];
  api?: { requestedAccessTokenVersion?: number | null } | null;
  /** Client secrets (only their metadata is ever returned); certflow never creates one. */
  passwordCredentials?: unknown[];
  createdDateTime?: string | null;
}

/** An application as messages name it: its display name and object id. */
export function described(app: GraphApp): string {
  return `${quote(app.displayName)} (object id ${app.id})`;
}

export interface GraphKeyCredential {
  keyId: string;
  type: string;
  usage: string;
  key: string | null;
  displayName: string | null;
  customKeyIdentifier: string | null;
}

export interface GraphAssignment {
  id: string;
  appRoleId: string;
  principalId: string;
  resourceId: string;
}

/** Attempts of a write that refers to an object created moments ago (Graph replicates for a while). */
const REPLICATION_ATTEMPTS = 5;

/**
 * Whether Graph did not find an object yet: right after it is created, Microsoft Graph may answer
 * 404 (or 400 "does not exist" / "does not reference a valid application") for a few seconds.
 */
function isReplicationLag(err: unknown): boolean {
  if (!(err instanceof GraphCallError)) return false;
  return (
    err.status === 404 ||
    (err.status === 400 && /does not exist|not found|does not reference a valid/i.test(err.message))
  );
}

/**
 * A failure during an apply: `cause` is what failed (often a GraphCallError or
 * GraphPermissionError), `applied` the changes Graph had accepted before it. They stay in the
 * directory; a new plan shows what remains.
 */
export class ReconcileError extends Error {
  override readonly name = 'ReconcileError';

  constructor(
    readonly applied: Change[],
    override readonly cause: unknown,
  ) {
    const count =
      applied.length === 1
        ? '1 change was made before it and stays'
        : `${applied.length} changes were made before it and stay`;
    super(
      `${cause instanceof Error ? cause.message : String(cause)}\n` +
        (applied.length === 0
          ? 'Nothing was changed before it.'
          : `${count} in the directory; plan again to see what remains.`),
    );
  }
}

/** The Graph calls reconcile makes; writes go through Run, which counts them. */
export type GraphCalls = Pick<GraphRest, 'get' | 'list' | 'post' | 'patch' | 'delete'>;

/** What one reconcile run collects, and whether it may write. */
export class Run {
  readonly changes: Change[] = [];
  /**
   * The changes done so far (apply): when Graph accepts a write, every change recorded before
   * it is done (each change is recorded before its writes).
   */
  readonly applied: Change[] = [];
  /** Graph, with every accepted write moving the changes recorded so far to `applied`. */
  readonly graph: GraphCalls;
  readonly warnings: string[] = [];
  /** Assignments revoked (or planned to be) while removing roles; the partners' pass skips them. */
  readonly revoked = new Set<string>();
  /** Ids (object, app and service principal ids) of what this run created. */
  readonly created = new Set<string>();
  /** appId → its service principal's id (undefined: none), as found or created in this run. */
  private readonly principals = new Map<string, string | undefined>();

  constructor(
    graph: GraphRest,
    readonly apply: boolean,
    private readonly replicationDelayMs = 2000,
  ) {
    const done = <T>(result: T): T => {
      this.applied.push(...this.changes.slice(this.applied.length));
      return result;
    };
    this.graph = {
      get: (path, operation) => graph.get(path, operation),
      list: (path, operation) => graph.list(path, operation),
      post: async (path, body, operation) => done(await graph.post(path, body, operation)),
      patch: async (path, body, operation) => done(await graph.patch(path, body, operation)),
      delete: async (path, operation) => done(await graph.delete(path, operation)),
    };
  }

  change(kind: ChangeKind, subject: string, detail: string): void {
    this.changes.push({ kind, subject, detail });
  }

  /** `write`, retried a few times while Graph does not see yet an object this run created (`ids`). */
  async afterCreate<T>(ids: string[], write: () => Promise<T>): Promise<T> {
    if (!ids.some((id) => this.created.has(id))) return write();
    for (let attempt = 1; ; attempt++) {
      try {
        return await write();
      } catch (err) {
        if (attempt >= REPLICATION_ATTEMPTS || !isReplicationLag(err)) throw err;
        await new Promise((resolve) => setTimeout(resolve, this.replicationDelayMs * attempt));
      }
    }
  }

  /** Creates an application (marked by `tags` in `body`) and remembers its ids as new. */
  async createApplication<T extends { id: string; appId: string }>(
    body: object,
    operation: string,
  ): Promise<T> {
    const app = await this.graph.post<T>('/applications', body, operation);
    this.created.add(app.id).add(app.appId);
    return app;
  }

  /**
   * The service principal of an application (undefined: it has none), looked up once a run: the
   * checks before the first write and the writes ask for the same ones.
   */
  async servicePrincipalId(appId: string, subject: string): Promise<string | undefined> {
    if (this.principals.has(appId)) return this.principals.get(appId);
    const filter = encodeURIComponent(`appId eq '${appId.replace(/'/g, "''")}'`);
    const found = await this.graph.list<{ id: string }>(
      `/servicePrincipals?$filter=${filter}&$select=id,appId`,
      `find the service principal of ${subject}`,
    );
    this.principals.set(appId, found[0]?.id);
    return found[0]?.id;
  }

  async createServicePrincipal(appId: string, subject: string): Promise<string> {
    const sp = await this.afterCreate([appId], () =>
      this.graph.post<{ id: string }>(
        '/servicePrincipals',
        { appId },
        `create the service principal of ${subject}`,
      ),
    );
    this.created.add(sp.id);
    this.principals.set(appId, sp.id);
    return sp.id;
  }

  /** The service principal of an existing application, created when it is missing (planned in a plan). */
  async ensureServicePrincipal(appId: string, subject: string): Promise<string> {
    const id = await this.servicePrincipalId(appId, subject);
    if (id !== undefined) return id;
    this.change('create', `service principal of ${subject}`, 'the application has none');
    return this.apply ? this.createServicePrincipal(appId, subject) : '';
  }
}
