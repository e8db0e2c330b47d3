/**
 * Starts the whole certificate flow on one machine and narrates the article's eight steps:
 * Entra ID emulator and gateway in this process, the API and the partner worker as the
 * separate programs they are in production.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  startEmulator,
  GraphClient,
  provisionApiAndPartner,
  type RunningEmulator,
} from '@certflow/entra-emulator';
import { fileAccessLog, startGateway } from '@certflow/local-gateway';
import { parseCertificate, writeFileAtomic } from '@certflow/certs';
import { API_LOG, GATEWAY_ACCESS_LOG, partnerCallNarrator, type StepReport } from './call-narration';
import { ChildProcessError, runJsonCommand, startService } from './child-service';
import { appEntryPoint, workspaceRoot } from './workspace';
import { StackFile, partnerEnvironment, removeStackFile, stackFilePath, writeStackFile } from './stack-file';

export const API_DISPLAY_NAME = 'certflow orders API';
export const API_IDENTIFIER_URI = 'api://certflow-orders';
export const API_ROLES = ['Orders.Read'];
export const PARTNER_DISPLAY_NAME = 'contoso-partner';

export interface StackOptions {
  stateDir: string;
  emulatorPort?: number;
  gatewayPort?: number;
  apiPort?: number;
  /** Passed to the emulator; tests shorten it. */
  tokenLifetimeSeconds?: number;
  /** Called as each of the eight steps happens. */
  onStep?: (step: StepReport) => void;
}

export type { StepReport };

export interface RunningStack {
  file: StackFile;
  emulator: RunningEmulator;
  /** Time from the start of `startStack` to the first successful API response. */
  firstCallMs: number;
  /** Environment for running the partner worker against this stack. */
  partnerEnv: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

/** A step of the flow that failed, named so that `npm start -- --once` can say which. */
export class StepFailedError extends Error {
  override readonly name = 'StepFailedError';
  constructor(
    readonly step: string,
    cause: unknown,
  ) {
    super(`${step} failed: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

async function step<T>(name: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw err instanceof StepFailedError ? err : new StepFailedError(name, err);
  }
}

export async function startStack(opts: StackOptions): Promise<RunningStack> {
  const began = performance.now();
  const stateDir = resolve(opts.stateDir);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const report = opts.onStep ?? (() => {});
  const cleanups: (() => Promise<void>)[] = [];
  const close = async (): Promise<void> => {
    removeStackFile(stateDir);
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    cleanups.length = 0;
  };

  try {
    const emulator = await step('starting the Entra ID emulator', () =>
      startEmulator({
        stateDir,
        port: opts.emulatorPort ?? 0,
        ...(opts.tokenLifetimeSeconds ? { tokenLifetimeSeconds: opts.tokenLifetimeSeconds } : {}),
      }),
    );
    cleanups.push(() => emulator.close());

    const graph = await step('connecting to the emulator Graph API', () => GraphClient.connect(emulator));
    const registrations = await step('step 1 (app registrations)', () => findOrProvision(graph));
    report({
      step: 1,
      title: 'App registrations for the API and the partner',
      where: 'tools/entra-emulator, Graph POST /applications',
      details: [
        ['API', `${API_DISPLAY_NAME}  appId ${registrations.api.appId}  ${API_IDENTIFIER_URI}`],
        ['app role', `${API_ROLES.join(', ')} (allowed member type: Application)`],
        ['partner', `${PARTNER_DISPLAY_NAME}  appId ${registrations.partner.appId}`],
        ['granted', `${API_ROLES.join(', ')} to the partner's service principal`],
      ],
    });

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
          API_AUDIENCES: `${registrations.api.appId},${API_IDENTIFIER_URI}`,
          ENTRA_CA_FILE: emulator.caCertificatePath,
        },
        { logFile: join(stateDir, API_LOG) },
      ),
    );
    cleanups.push(() => api.stop());

    const policyFile = join(workspaceRoot(), 'apps', 'api', 'apim', 'policy.xml');
    // One JSON line per request (never a token), kept out of the narration; written in batches.
    const accessLog = await fileAccessLog(join(stateDir, GATEWAY_ACCESS_LOG));
    cleanups.push(() => accessLog.close());
    const gateway = await step('starting the gateway', () =>
      startGateway({
        stateDir,
        port: opts.gatewayPort ?? 0,
        policyFile,
        backendUrl: api.url,
        accessLog: accessLog.sink,
        trustedCaPem: readFileSync(emulator.caCertificatePath, 'utf8'),
        namedValues: {
          'entra-instance': emulator.url,
          'tenant-id': emulator.tenantId,
          'api-app-id': registrations.api.appId,
          'api-app-id-uri': API_IDENTIFIER_URI,
        },
      }),
    );
    cleanups.push(() => gateway.close());

    const certificateDirectory = join(stateDir, 'partner');
    const partnerEnv: NodeJS.ProcessEnv = {
      ...process.env,
      ...partnerEnvironment({
        entraInstance: emulator.url,
        tenantId: emulator.tenantId,
        clientId: registrations.partner.appId,
        scope: `${API_IDENTIFIER_URI}/.default`,
        apiBaseUrl: gateway.url,
        certificateDirectory,
        caCertificatePath: emulator.caCertificatePath,
      }),
    };

    const certificate = await step('step 2 (partner certificate)', () =>
      ensurePartnerCertificate(partnerEnv),
    );
    report({
      step: 2,
      title: 'The partner generates its key pair and certificate',
      where: 'apps/partner-worker (cert create), libs/certs',
      details: [
        ['private key', `${certificate.privateKeyPath} (mode 0600, never leaves the partner)`],
        ['certificate', `${certificate.subject}, valid until ${certificate.notAfter}`],
        ['SHA-256', certificate.sha256Hex],
        ['created', certificate.created ? 'now' : 'earlier (reused from the state directory)'],
      ],
    });

    const cer = readFileSync(certificate.cerPath);
    const parsedCer = parseCertificate(cer);
    report({
      step: 3,
      title: 'The partner sends only the public certificate (.cer)',
      where: 'libs/certs (DER export)',
      details: [
        ['file', `${certificate.cerPath} (${cer.length} bytes, DER, public key only)`],
        ['SHA-1 (x5t)', parsedCer.thumbprints.sha1Hex],
      ],
    });

    const { keyId, uploaded } = await step('step 4 (certificate upload)', () =>
      uploadIfMissing(graph, registrations.partner.objectId, cer, parsedCer.thumbprints.sha1Hex),
    );
    // What the API owner tells the partner: the keyId of its certificate, so that the partner's
    // first `cert rotate` can remove it with removeKey (the partner cannot read the registration).
    writeFileAtomic(join(certificateDirectory, PARTNER_KEY_ID_FILE), `${keyId}\n`, 0o644);
    report({
      step: 4,
      title: 'You upload it under Certificates & secrets',
      where: 'tools/entra-emulator, Graph PATCH /applications/{id} keyCredentials',
      details: [
        ['application', `${PARTNER_DISPLAY_NAME} (${registrations.partner.objectId})`],
        ['keyCredential', `${keyId} (${uploaded ? 'added' : 'already registered'})`],
      ],
    });

    let firstCallMs = 0;
    const narrate = partnerCallNarrator(gateway.url, stateDir, report, () => {
      firstCallMs ||= performance.now() - began;
    });
    const result = await runJsonCommand(
      appEntryPoint('partner-worker'),
      ['call', '/orders', '--times', '2', '--json'],
      partnerEnv,
      narrate,
    );
    if (result.code !== 0) {
      throw new StepFailedError(
        'steps 5–8 (token and API call)',
        new ChildProcessError('the partner worker failed', result.output),
      );
    }

    const file: StackFile = {
      version: 1,
      startedAt: new Date().toISOString(),
      pid: process.pid,
      stateDir,
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
      gateway: { url: gateway.url, healthUrl: `${gateway.url}/status-0123456789abcdef`, policyFile },
      api: {
        url: api.url,
        appId: registrations.api.appId,
        objectId: registrations.api.objectId,
        identifierUri: API_IDENTIFIER_URI,
        scope: `${API_IDENTIFIER_URI}/.default`,
        roles: API_ROLES,
      },
      partner: {
        appId: registrations.partner.appId,
        objectId: registrations.partner.objectId,
        servicePrincipalId: registrations.partner.servicePrincipalId,
        certificateDirectory,
        thumbprintSha256: parsedCer.thumbprints.sha256Hex,
        roles: API_ROLES,
      },
    };
    writeStackFile(stateDir, file);
    return { file, emulator, firstCallMs, partnerEnv, close };
  } catch (err) {
    await close();
    throw err;
  }
}

interface Registrations {
  api: { appId: string; objectId: string };
  partner: { appId: string; objectId: string; servicePrincipalId: string };
}

/** Reuses the registrations of an earlier run (the emulator's state persists), or creates them. */
async function findOrProvision(graph: GraphClient): Promise<Registrations> {
  const apps = await graph.listApplications();
  const api = apps.find((a) => a.identifierUris?.includes(API_IDENTIFIER_URI));
  const partner = apps.find((a) => a.displayName === PARTNER_DISPLAY_NAME);
  if (api && partner) {
    const sp = await graph.findServicePrincipalByAppId(partner.appId);
    if (sp) {
      return {
        api: { appId: api.appId, objectId: api.id },
        partner: { appId: partner.appId, objectId: partner.id, servicePrincipalId: sp.id },
      };
    }
  }
  const provisioned = await provisionApiAndPartner(graph, {
    apiDisplayName: API_DISPLAY_NAME,
    apiIdentifierUri: API_IDENTIFIER_URI,
    roles: API_ROLES,
    partnerDisplayName: PARTNER_DISPLAY_NAME,
    grantRoles: API_ROLES,
  });
  return {
    api: { appId: provisioned.api.appId, objectId: provisioned.api.objectId },
    partner: provisioned.partner,
  };
}

interface PartnerCertificate {
  privateKeyPath: string;
  cerPath: string;
  subject: string;
  notAfter: string;
  sha256Hex: string;
  created: boolean;
}

async function ensurePartnerCertificate(env: NodeJS.ProcessEnv): Promise<PartnerCertificate> {
  const worker = appEntryPoint('partner-worker');
  let created = false;
  let result = await runJsonCommand(worker, ['cert', 'show', '--json'], env);
  if (result.code !== 0) {
    result = await runJsonCommand(
      worker,
      ['cert', 'create', '--common-name', PARTNER_DISPLAY_NAME, '--json'],
      env,
    );
    created = true;
  }
  const info = result.events[0];
  if (result.code !== 0 || !info)
    throw new ChildProcessError('the partner worker could not create its certificate', result.output);
  const thumbprints = info.thumbprints as { sha256Hex: string };
  return {
    privateKeyPath: String(info.privateKeyPath),
    cerPath: String(info.cerPath),
    subject: String(info.subject),
    notAfter: String(info.notAfter),
    sha256Hex: thumbprints.sha256Hex,
    created,
  };
}

/** The partner worker's file for the keyId of its registered certificate (apps/partner-worker rotation.ts). */
const PARTNER_KEY_ID_FILE = 'partner.key-id';

async function uploadIfMissing(
  graph: GraphClient,
  objectId: string,
  cer: Buffer,
  sha1Hex: string,
): Promise<{ keyId: string; uploaded: boolean }> {
  const app = await graph.getApplication(objectId);
  const registered = app.keyCredentials.find((k) => k.customKeyIdentifier?.toUpperCase() === sha1Hex);
  if (registered) return { keyId: registered.keyId, uploaded: false };
  const added = await graph.addCertificate(
    objectId,
    cer,
    `${PARTNER_DISPLAY_NAME} ${new Date().toISOString().slice(0, 10)}`,
  );
  return { keyId: added.keyId, uploaded: true };
}

export { stackFilePath };
