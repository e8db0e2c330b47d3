/**
 * Certificate rotation in the middle of the load: a partner facade serves calls while
 * `partner-worker cert rotate` runs in another process (Graph addKey with a proof signed by the
 * current key, switch, removeKey of the old one). The facade picks up the new generation without
 * a restart and keeps serving its cached token, which stays valid: the rotation costs no token
 * request and no failed call. (That the worker's next token request signs with the new key is
 * proven in the partner worker's own tests, with short-lived tokens.)
 *
 * Two variants: the stack's partner with its key file (changes the stack's partner certificate,
 * so it runs last), and a credential of the same partner whose key is in a SoftHSM2 token, where
 * `cert rotate` makes the next key in the same token and deletes the old one after removeKey.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseCertificate, type ParsedCertificate } from '@certflow/certs';
import { GraphClient, readEmulatorInfo } from '@certflow/entra-emulator';
import {
  appEntryPoint,
  partnerCertificate,
  PARTNER_KEY_ID_FILE,
  partnerTokenResponse,
  runJsonCommand,
  stackPartner,
} from '@certflow/stack';
import { runLoad, type LoadResult } from './http-load';
import { createHsmPartner } from './hsm-partner';
import {
  counterSum,
  partnerWorkerEnvironment,
  startPartnerFacade,
  tokensIssuedToPartner,
} from './partner-facade';
import { check, common, pause, type Marker, type SuiteContext, type SuiteResult } from './suite-context';

/**
 * Drives the load at `url` until `signal` aborts (`durationMs` is an upper bound), then resolves
 * with what it measured. certflow's runLoad by default; the k6 runner passes one that runs k6.
 */
export type LoadDriver = (
  url: string,
  opts: { durationMs: number; signal: AbortSignal },
) => Promise<LoadResult>;

const runLoadDriver =
  (ctx: SuiteContext): LoadDriver =>
  (url, { durationMs, signal }) =>
    runLoad({ ...common(ctx), durationMs, url, signal });

/** Calls the facade at `facadeUrl` has served so far, any outcome (its /metrics). */
export async function callsServed(facadeUrl: string): Promise<number> {
  const res = await fetch(`${facadeUrl}/metrics`);
  if (!res.ok) throw new Error(`GET ${facadeUrl}/metrics: HTTP ${res.status}`);
  return counterSum(await res.text(), 'partner_calls_total');
}

/**
 * Waits until the facade has served `calls` calls (a load engine may take a while to start),
 * at most `timeoutMs`; resolves with the count it read last.
 */
export async function waitForCalls(
  facadeUrl: string,
  calls: number,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    signal?.throwIfAborted();
    const served = await callsServed(facadeUrl).catch(() => 0);
    if (served >= calls || Date.now() >= deadline) return served;
    await sleep(100, undefined, signal ? { signal } : {});
  }
}

/**
 * What is wrong with the load around the rotation, from the facade's call counts when the
 * rotation began, when it ended, and when the load was stopped: the rotation must run under a
 * load that had started (`wanted` calls) and went on after it.
 */
export function overlapProblems(
  calls: { atStart: number; atEnd: number; atStop: number },
  wanted: number,
): string[] {
  const problems: string[] = [];
  if (calls.atStart < wanted)
    problems.push(
      `the load had not started when the rotation began: the facade had served ${calls.atStart} calls (at least ${wanted} expected)`,
    );
  if (calls.atEnd <= calls.atStart) problems.push('the facade served no call while cert rotate ran');
  if (calls.atStop <= calls.atEnd)
    problems.push('the load stopped before the rotation ended: the facade served no call after it');
  return problems;
}

/** Calls served before the rotation may begin, and how long the load engine may take to get there. */
const flowing = (ctx: SuiteContext) => ({
  calls: Math.max(10, 2 * ctx.profile.connections),
  timeoutMs: 60_000,
});

type Thumbprints = ParsedCertificate['thumbprints'];

/** The credential a variant rotates, and what it checks beyond what every variant checks. */
interface Rotating {
  certDir: string;
  /** Over the stack partner's environment, for the facade and for `cert rotate`. */
  env: Record<string, string>;
  /** The keyId cert rotate must remove. */
  oldKeyId: string;
  rotateArgs: string[];
  /** What is wrong once the rotation is over (every token request here comes after the count). */
  afterwards(now: Thumbprints, newKeyId: string): Promise<string[]>;
}

const thumbprintsIn = (certDir: string): Thumbprints =>
  parseCertificate(readFileSync(join(certDir, 'partner.crt.pem'))).thumbprints;

interface Rotated {
  result: LoadResult;
  figures: Record<string, number>;
  broken: string[];
  /** The `cert rotate` run's window, when it ran. */
  markers: Marker[];
}

async function rotateUnderLoad(ctx: SuiteContext, drive: LoadDriver, rotating: Rotating): Promise<Rotated> {
  const broken: string[] = [];
  const { certDir, env } = rotating;
  const old = thumbprintsIn(certDir);
  const issuedBefore = await tokensIssuedToPartner(ctx.file, ctx.ca);
  const facade = await startPartnerFacade(ctx.file, 'rotating', env);
  const stopLoad = new AbortController();
  let rotation:
    | { code: number | null; output: string; startMs: number; ms: number; events: Record<string, unknown>[] }
    | undefined;
  let result: LoadResult;
  let facadeMetrics = '';
  let facadeHealth: { certificate?: { thumbprintSha256?: string } } = {};
  try {
    // Upper bound; the run ends a third of the profile's duration after the rotation finished.
    const load = drive(`${facade.url}/call/orders`, {
      durationMs: ctx.profile.durationMs + 120_000,
      signal: ctx.signal ? AbortSignal.any([stopLoad.signal, ctx.signal]) : stopLoad.signal,
    });
    try {
      // Only once the load flows (an engine may be slow to start), a third of the duration more.
      const { calls, timeoutMs } = flowing(ctx);
      if ((await waitForCalls(facade.url, calls, timeoutMs, ctx.signal)) >= calls)
        await pause(ctx, ctx.profile.durationMs / 3);
      ctx.signal?.throwIfAborted(); // no rotation once the run is stopped
      const atStart = await callsServed(facade.url);
      const startMs = Date.now();
      const started = performance.now();
      const run = await runJsonCommand(
        appEntryPoint('partner-worker'),
        ['cert', 'rotate', ...rotating.rotateArgs, '--json'],
        partnerWorkerEnvironment(ctx.file, env),
        undefined,
        90_000,
      );
      rotation = { ...run, startMs, ms: performance.now() - started };
      const atEnd = await callsServed(facade.url);
      // Wait (bounded) until the facade has picked the new generation up, then serve a third of
      // the duration on the new certificate.
      const rotated = thumbprintsIn(certDir).sha256Hex;
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        facadeHealth = (await fetch(`${facade.url}/health`).then((r) => r.json())) as typeof facadeHealth;
        if (facadeHealth.certificate?.thumbprintSha256 === rotated) break;
        await pause(ctx, 100);
      }
      await pause(ctx, ctx.profile.durationMs / 3);
      broken.push(...overlapProblems({ atStart, atEnd, atStop: await callsServed(facade.url) }, calls));
    } finally {
      stopLoad.abort();
      result = await load;
    }
    facadeMetrics = await fetch(`${facade.url}/metrics`).then((r) => r.text());
    facadeHealth = (await fetch(`${facade.url}/health`).then((r) => r.json())) as typeof facadeHealth;
  } finally {
    await facade.stop();
  }
  const issued = (await tokensIssuedToPartner(ctx.file, ctx.ca)) - issuedBefore;

  if (rotation?.code !== 0) broken.push(`cert rotate exited with ${rotation?.code}:\n${rotation?.output}`);
  const removed = rotation?.events.find((e) => e.event === 'rotation')?.removedKeyId;
  if (removed !== rotating.oldKeyId)
    broken.push(`cert rotate removed ${String(removed)}, not the old keyId ${rotating.oldKeyId}`);
  const now = thumbprintsIn(certDir);
  if (now.sha256Hex === old.sha256Hex) broken.push('the certificate did not change');
  if (facadeHealth.certificate?.thumbprintSha256 !== now.sha256Hex)
    broken.push(
      `the facade reports the certificate ${facadeHealth.certificate?.thumbprintSha256}, not the new ${now.sha256Hex}`,
    );
  const switches = counterSum(facadeMetrics, 'partner_certificate_switches_total');
  if (switches !== 1) broken.push(`the facade switched certificates ${switches} times (expected 1)`);
  // The facade's one token stays valid across the switch (the rotation's Graph token is not counted).
  if (issued !== 1)
    broken.push(
      `${issued} API tokens were issued to the partner (expected 1: the rotation must not cost a token)`,
    );
  const newKeyId = readFileSync(join(certDir, PARTNER_KEY_ID_FILE), 'utf8').trim();
  broken.push(...(await rotating.afterwards(now, newKeyId)));
  return {
    result,
    markers: rotation
      ? [
          {
            label: 'cert rotate',
            kind: 'rotation',
            startMs: rotation.startMs,
            endMs: rotation.startMs + rotation.ms,
          },
        ]
      : [],
    figures: {
      'rotation took (ms)': Math.round(rotation?.ms ?? 0),
      'API tokens issued during the suite': issued,
      'certificate switches': switches,
      'failed calls': result.requests - (result.statuses[String(ctx.profile.thresholds.expectedStatus)] ?? 0),
    },
    broken,
  };
}

/** The stack's partner and its key file: the emulator refuses the old certificate afterwards. */
export async function rotationUnderLoad(
  ctx: SuiteContext,
  drive: LoadDriver = runLoadDriver(ctx),
): Promise<SuiteResult> {
  const partner = stackPartner(ctx.file);
  const old = partnerCertificate(partner);
  const { result, figures, broken, markers } = await rotateUnderLoad(ctx, drive, {
    certDir: partner.certificateDirectory,
    env: {},
    // The keyId the API owner told the partner (the stack writes it); cert rotate removes it.
    oldKeyId: readFileSync(join(partner.certificateDirectory, PARTNER_KEY_ID_FILE), 'utf8').trim(),
    rotateArgs: [],
    async afterwards() {
      const problems: string[] = [];
      const oldAnswer = await partnerTokenResponse(ctx.file, partner, old);
      if (oldAnswer.status !== 401 || !oldAnswer.text.includes('AADSTS700027'))
        problems.push(
          `the old certificate was not refused: HTTP ${oldAnswer.status} ${oldAnswer.text.slice(0, 200)}`,
        );
      const newAnswer = await partnerTokenResponse(ctx.file, partner);
      if (newAnswer.status !== 200)
        problems.push(
          `the new certificate gets no token: HTTP ${newAnswer.status} ${newAnswer.text.slice(0, 200)}`,
        );
      return problems;
    },
  });
  const measurements = [{ name: 'partner facade, certificate rotated mid-load', result }];
  return {
    suite: 'rotation-under-load',
    description:
      'calls through the partner facade while cert rotate (addKey, switch, removeKey) runs in another process',
    measurements,
    figures,
    broken: [...check(ctx, measurements), ...broken],
    markers,
  };
}

/**
 * The same partner with its key in a SoftHSM2 token: cert rotate makes the next key pair in the
 * token, and afterwards exactly one key pair is left there, the new one; Graph holds the new
 * certificate and not the old keyId; the worker gets a token with the new key.
 */
export async function rotationUnderLoadPkcs11(
  ctx: SuiteContext,
  drive: LoadDriver = runLoadDriver(ctx),
): Promise<SuiteResult> {
  const partner = stackPartner(ctx.file);
  const hsm = await createHsmPartner(ctx.file, 'certflow-load-rotation');
  let outcome: Rotated;
  try {
    const before = hsm.keyPairs();
    if (before.privateKeys.length !== 1)
      throw new Error(`the token holds ${before.privateKeys.length} private keys before the rotation, not 1`);
    outcome = await rotateUnderLoad(ctx, drive, {
      certDir: hsm.certDir,
      env: hsm.env,
      oldKeyId: hsm.keyId,
      // The API owner told the partner the keyId of the certificate it registered.
      rotateArgs: ['--old-key-id', hsm.keyId],
      async afterwards(now, newKeyId) {
        const problems: string[] = [];
        const { privateKeys, publicKeys } = hsm.keyPairs();
        if (
          privateKeys.length !== 1 ||
          publicKeys.length !== 1 ||
          privateKeys[0] !== publicKeys[0] ||
          privateKeys[0] === before.privateKeys[0]
        )
          problems.push(
            `the token should hold exactly the new key pair; it holds private keys [${privateKeys}] and public keys [${publicKeys}] (the old key's id: ${before.privateKeys[0]})`,
          );
        const graph = await GraphClient.connect(readEmulatorInfo(ctx.file.stateDir));
        try {
          const app = await graph.getApplication(partner.objectId, { select: ['id', 'keyCredentials'] });
          if (app.keyCredentials.some((k) => k.keyId === hsm.keyId))
            problems.push(`the old keyId ${hsm.keyId} is still registered`);
          const registered = app.keyCredentials.find((k) => k.keyId === newKeyId);
          if (registered?.customKeyIdentifier !== now.sha1Hex)
            problems.push(
              `partner.key-id names ${newKeyId}, which is not the new certificate's registration (${registered?.customKeyIdentifier ?? 'not registered'})`,
            );
        } finally {
          graph.close();
        }
        const tokenRun = await runJsonCommand(
          appEntryPoint('partner-worker'),
          ['token', 'get', '--json'],
          partnerWorkerEnvironment(ctx.file, hsm.env),
        );
        if (tokenRun.code !== 0) problems.push(`the new key in the token gets no token:\n${tokenRun.output}`);
        return problems;
      },
    });
  } finally {
    await hsm.remove();
  }
  const measurements = [{ name: 'partner facade, key in SoftHSM2 rotated mid-load', result: outcome.result }];
  return {
    suite: 'rotation-under-load-pkcs11',
    description:
      'calls through the partner facade while cert rotate makes the next key in the SoftHSM2 token, switches, removes the old keyId and deletes the old key',
    measurements,
    figures: outcome.figures,
    broken: [...check(ctx, measurements), ...outcome.broken],
    markers: outcome.markers,
  };
}
