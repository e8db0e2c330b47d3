/**
 * Starts the whole certificate flow on one machine and narrates the article's eight steps:
 * the topology file is loaded (a bad one stops everything before the state directory is
 * touched), the emulator's directory reconciled with it, then the API, the gateway and each
 * partner's calls. Entra ID emulator and gateway in this process, the API and the partner
 * worker as the separate programs they are in production.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CLOCK_FILE_ENV, CLOCK_OFFSET_ENV, type Clock } from '@certflow/clock';
import {
  clockFilePath,
  EmulatorError,
  GraphClient,
  removeStaleClockFile,
  startEmulator,
  type RunningEmulator,
} from '@certflow/entra-emulator';
import { fileAccessLog, startGateway } from '@certflow/local-gateway';
import {
  apimNamedValues,
  DEFAULT_TOPOLOGY_FILE,
  changeLines,
  GraphRest,
  loadTopology,
  ReconcileError,
  type Change,
  type LoadedTopology,
} from '@certflow/topology';
import { API_LOG, GATEWAY_ACCESS_LOG, type StepReport } from './call-narration';
import { startService } from './child-service';
import { certificateSteps, topologyStep } from './narration';
import { checkServedPolicies } from './policy-check';
import { ensurePartnerCertificate, writePartnerKeyId, type PartnerCertificate } from './partners';
import { provePartnerAccess } from './partner-calls';
import {
  StackFile,
  STACK_FILE_VERSION,
  removeStackFile,
  stackFilePath,
  stackPartnerEnvironment,
  writeStackFile,
} from './stack-file';
import { StepFailedError, step } from './step';
import { migrateLegacyPartnerDirectory, syncTopology, type TopologySync } from './topology-sync';
import { appEntryPoint, workspaceRoot } from './workspace';

export interface StackOptions {
  stateDir: string;
  /** The topology file (default `<workspace>/certflow.topology.json`). */
  topologyFile?: string;
  emulatorPort?: number;
  gatewayPort?: number;
  apiPort?: number;
  /** Passed to the emulator; tests shorten it. */
  tokenLifetimeSeconds?: number;
  /**
   * Start the clock shifted by this many milliseconds (`--clock-offset`; 0 is allowed): kept in
   * `<stateDir>/clock.json`, which the emulator, the gateway, the API and every partner worker the
   * stack runs follow, so moving it with `/admin/clock` moves it for all of them. Without it every
   * process uses the real time, and a clock.json left by an earlier run is removed.
   */
  clockOffsetMs?: number;
  /** Called as each of the eight steps happens. */
  onStep?: (step: StepReport) => void;
}

export type { StepReport };
export { StepFailedError };

export interface RunningStack {
  file: StackFile;
  topology: LoadedTopology;
  emulator: RunningEmulator;
  /** Time from the start of `startStack` to the first successful API response. */
  firstCallMs: number;
  /** Partners whose `GET /orders` through the gateway answered 2xx, in topology order. */
  readers: string[];
  /** Environment for running the partner worker against this stack, per partner name. */
  partnerEnv: (name?: string) => NodeJS.ProcessEnv;
  /** The clock file every process follows (none: the real time), and the offset of a stale one removed at start. */
  clock: { file: string | undefined; removedStale: string | undefined };
  close(): Promise<void>;
}

export const defaultTopologyFile = (): string => join(workspaceRoot(), DEFAULT_TOPOLOGY_FILE);

/** Whether `err` is the emulator refusing the state directory: another process's emulator (or stack) runs on it, or its `emulator.lock` is unusable; nothing was changed. */
export const isStateLocked = (err: unknown): err is EmulatorError =>
  err instanceof EmulatorError && err.code === 'ERR_STATE_LOCKED';

/**
 * Throws the topology's TopologyError before anything else happens (also for a served policy
 * the local gateway cannot run): a bad topology file changes nothing in the state directory,
 * and does not create it. Then the emulator is the first to touch the directory: it takes
 * `emulator.lock` before reading anything there, so while another stack (or emulator) runs on
 * it this throws the emulator's ERR_STATE_LOCKED error (`isStateLocked`), nothing changed. A
 * failure in or after step 1 names what step 1 had already changed in the directory.
 */
export async function startStack(opts: StackOptions): Promise<RunningStack> {
  const began = performance.now();
  const loaded = loadTopology(resolve(opts.topologyFile ?? defaultTopologyFile()));
  checkServedPolicies(loaded);
  const { topology } = loaded;
  const stateDir = resolve(opts.stateDir);
  const clockFile = opts.clockOffsetMs === undefined ? undefined : clockFilePath(stateDir);
  const emulator = await startEmulator({
    stateDir,
    port: opts.emulatorPort ?? 0,
    ...(opts.tokenLifetimeSeconds ? { tokenLifetimeSeconds: opts.tokenLifetimeSeconds } : {}),
    ...(clockFile === undefined ? {} : { clockOffset: opts.clockOffsetMs, clockFile }),
  }).catch((err: unknown) => {
    throw isStateLocked(err) ? err : new StepFailedError('starting the Entra ID emulator', err);
  });
  // The emulator holds the directory's lock until it is closed, the last of the clean-ups.
  const cleanups: (() => Promise<void>)[] = [() => emulator.close()];
  const close = async (): Promise<void> => {
    removeStackFile(stateDir);
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    cleanups.length = 0;
  };
  const report = opts.onStep ?? (() => {});
  // What was changed, for a failure to name: the state directory before step 1, then the directory.
  const made: string[] = [];
  let applied: string | undefined;

  let removedStale: string | undefined;
  try {
    // The directory is this stack's now: a clock an earlier run left shifted must not shift this
    // one (a clock.json that is not a file stops the start here, the emulator closed).
    removedStale = clockFile === undefined ? removeStaleClockFile(stateDir) : undefined;
    // Whatever stack.json is there describes a stack that is gone.
    removeStackFile(stateDir);
    const moved = await step('migrating the state directory', async () =>
      migrateLegacyPartnerDirectory(stateDir, topology),
    );
    made.push(...moved.filter((m) => m.startsWith('moved ')));

    const certificates: PartnerCertificate[] = [];
    for (const partner of topology.partners) {
      const cert = await step(`step 2 (certificate of partner ${partner.name})`, () =>
        ensurePartnerCertificate(stateDir, partner, clockFile),
      );
      certificates.push(cert);
      if (cert.created)
        made.push(`created ${cert.directory} (key pair and certificate of partner ${partner.name})`);
    }

    const graphClient = await step('connecting to the emulator Graph API', () =>
      GraphClient.connect(emulator),
    );
    cleanups.push(async () => graphClient.close());
    // The development CA, trusted by this process's Graph calls and by the gateway.
    const ca = readFileSync(emulator.caCertificatePath);
    const graph = new GraphRest({
      baseUrl: emulator.graphUrl,
      token: () => graphClient.accessToken(),
      ca,
    });
    cleanups.push(async () => graph.close());
    const sync = await step('step 1 (reconciling the directory with the topology)', () =>
      syncTopology({
        graph,
        topology,
        stateDir,
        certificate: (p) => certificates.find((c) => c.partner.name === p.name)?.cer,
      }).catch((err: unknown) => {
        // Reconcile failed half-way: what Graph had accepted before stays, and is said here.
        if (!(err instanceof ReconcileError)) throw err;
        applied =
          err.applied.length > 0
            ? listChanges('These changes were made in the directory before it and stay:', err.applied)
            : 'Nothing was changed in the directory before it.';
        throw err.cause;
      }),
    );
    sync.notes.unshift(...moved);
    report(topologyStep(loaded, sync));
    applied = appliedChanges(sync);

    for (const [i, cert] of certificates.entries()) {
      const registered = sync.result.partners[i]!;
      const keyId = registered.certificateKeyId;
      if (!keyId)
        throw new StepFailedError(`step 4 (partner ${cert.partner.name})`, 'no keyId after reconcile');
      writePartnerKeyId(cert.directory, keyId);
      const uploaded = sync.result.changes.some(
        (c) => c.kind === 'upload' && c.subject === `partner ${cert.partner.name}`,
      );
      for (const s of certificateSteps(cert, registered, keyId, uploaded)) report(s);
    }

    // The topology's first API runs here; the others are registered only.
    const apiTopology = topology.apis[0]!;
    const apiRegistration = sync.result.apis[0]!;
    // The API's JSON log (its stderr: never a token) is appended to api.log, like the gateway's
    // access log below; both carry the trace id of each call.
    const api = await step('starting the API', () =>
      startService(
        'the API',
        appEntryPoint('api'),
        [],
        {
          ...process.env,
          HOST: '127.0.0.1',
          PORT: String(opts.apiPort ?? 0),
          ENTRA_INSTANCE: emulator.url,
          ENTRA_TENANT_ID: emulator.tenantId,
          API_AUDIENCES: `${apiRegistration.appId},${apiRegistration.identifierUri}`,
          ENTRA_CA_FILE: emulator.caCertificatePath,
          // The stack's clock file, or none at all: a shifted clock is never inherited from elsewhere.
          [CLOCK_OFFSET_ENV]: undefined,
          [CLOCK_FILE_ENV]: clockFile,
        },
        // The API stops when this process ends, even when it is killed with SIGKILL.
        { logFile: join(stateDir, API_LOG), exitWithParent: true },
      ),
    );
    cleanups.push(() => api.stop());

    // One JSON line per request (never a token), kept out of the narration; written in batches.
    const accessLog = await fileAccessLog(join(stateDir, GATEWAY_ACCESS_LOG));
    cleanups.push(() => accessLog.close());
    const gateway = await step('starting the gateway', () =>
      startGateway({
        stateDir,
        port: opts.gatewayPort ?? 0,
        policyFile: apiTopology.policy,
        operations: apiTopology.operations.map((o) => ({
          method: o.method,
          urlTemplate: o.urlTemplate,
          policyFile: o.policy,
        })),
        backendUrl: api.url,
        accessLog: accessLog.sink,
        trustedCaPem: ca.toString('utf8'),
        namedValues: apimNamedValues(apiRegistration, emulator.url, emulator.tenantId),
        // In this process: the emulator's own clock, which follows and writes the clock file.
        ...(clockFile === undefined ? {} : { clock: emulatorClock(emulator) }),
      }),
    );
    cleanups.push(() => gateway.close());

    const file: StackFile = {
      version: STACK_FILE_VERSION,
      startedAt: new Date().toISOString(),
      pid: process.pid,
      stateDir,
      topologyFile: loaded.file,
      caCertificatePath: emulator.caCertificatePath,
      tenantId: emulator.tenantId,
      emulator: {
        url: emulator.url,
        authority: emulator.authority,
        issuer: emulator.issuer,
        openIdConfigurationUrl: emulator.openIdConfigurationUrl,
        tokenEndpoint: emulator.tokenEndpoint,
        jwksUri: emulator.jwksUri,
        graphUrl: emulator.graphUrl,
        metadataFile: join(stateDir, 'emulator.json'),
      },
      gateway: {
        url: gateway.url,
        healthUrl: `${gateway.url}/status-0123456789abcdef`,
        policyFile: apiTopology.policy,
      },
      apis: sync.result.apis.map((a, i) => ({
        name: a.name,
        displayName: topology.apis[i]!.displayName,
        appId: a.appId,
        objectId: a.objectId,
        servicePrincipalId: a.servicePrincipalId,
        identifierUri: a.identifierUri,
        scope: `${a.identifierUri}/.default`,
        roles: topology.apis[i]!.appRoles.map((r) => r.value),
        url: i === 0 ? api.url : null,
      })),
      partners: sync.result.partners.map((p, i) => ({
        name: p.name,
        displayName: topology.partners[i]!.displayName,
        appId: p.appId,
        objectId: p.objectId,
        servicePrincipalId: p.servicePrincipalId,
        certificateDirectory: certificates[i]!.directory,
        thumbprintSha256: certificates[i]!.sha256Hex,
        roles: topology.partners[i]!.roles,
      })),
      ...(clockFile === undefined ? {} : { clockFile }),
    };

    const { firstCallMs, readers } = await provePartnerAccess({ file, topology, stateDir, report, began });
    writeStackFile(stateDir, file);
    const partnerEnv = (name?: string): NodeJS.ProcessEnv => ({
      ...process.env,
      ...stackPartnerEnvironment(file, name),
    });
    return {
      file,
      topology: loaded,
      emulator,
      firstCallMs,
      readers,
      partnerEnv,
      clock: { file: clockFile, removedStale },
      close,
    };
  } catch (err) {
    await close();
    const notes = [
      ...(made.length > 0
        ? [
            [
              'The state directory had been changed before step 1, and this stays:',
              ...made.map((m) => `  ${m}`),
            ].join('\n'),
          ]
        : []),
      ...(applied === undefined ? [] : [applied]),
    ];
    if (notes.length === 0) throw err;
    const failed = err instanceof StepFailedError ? err : new StepFailedError('start-up', err);
    throw failed.withNote(notes.join('\n'));
  }
}

/** The in-process emulator's clock as a `Clock` of `@certflow/clock`. */
function emulatorClock(emulator: RunningEmulator): Clock {
  return {
    now: () => emulator.clock.now(),
    nowMs: () => emulator.clock.now().getTime(),
    get offsetMs() {
      return emulator.clock.offsetMs;
    },
  };
}

/** What step 1 changed in the directory and the state directory, for a failure after it: those changes stay. */
function appliedChanges({ result, removedDirectories }: TopologySync): string {
  if (result.changes.length === 0 && removedDirectories.length === 0)
    return 'Step 1 had changed nothing in the directory.';
  return [
    listChanges('Step 1 had already changed the directory, and these changes stay:', result.changes),
    ...removedDirectories.map((d) => `removed ${d} (its partner left the topology)`),
  ].join('\n');
}

/** `heading`, then one plan line per change (`  + create api orders: …`), as step 1 prints them. */
function listChanges(heading: string, changes: Change[]): string {
  return [heading, ...changeLines(changes)].join('\n');
}

export { stackFilePath };
