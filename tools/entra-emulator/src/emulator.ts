/**
 * `startEmulator`: the local Entra ID token service over HTTPS (server certificate from the
 * development CA), with its state in `<stateDir>/emulator-state.json` and its address and
 * admin credentials in `<stateDir>/emulator.json`; `<stateDir>/emulator.lock` keeps a second
 * emulator off the directory while this one runs (state-dir-lock.ts).
 */
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { DevelopmentCa } from '@certflow/certs';
import { type GuardDecision, isLoopbackAddress, loopbackGuard } from '@certflow/loopback-guard';
import { v1Issuer, type TokenLifetime } from './access-tokens';
import { adminSecretCoversClock, adminSecretValidity, createInitialState, upgradeState } from './bootstrap';
import { ReplayGuard } from './client-assertion-verifier';
import { clientSecretMatches } from './client-secrets';
import { Directory } from './directory';
import { DISCOVERY_CACHE_CONTROL, jwks, openIdConfiguration, openIdConfigurationV1 } from './discovery';
import { validateOptions, type EmulatorOptions, type EmulatorSettings } from './emulator-options';
import { FaultInjector, faultsRoute, type FaultSettings } from './faults';
import { PROMETHEUS_CONTENT_TYPE } from '@certflow/observability';
import { Metrics, type TokenOutcome } from './metrics';
import {
  describeEmulator,
  readEmulatorInfoIfPresent,
  writeEmulatorInfo,
  type EmulatorInfo,
} from './emulator-info';
import { entraErrorBody, entraErrors, EntraError } from './entra-errors';
import { EmulatorError } from './errors';
import { TokenForm } from './form-body';
import { ADMIN_PREFIX, handleAdminRequest, type AdminRoute } from './admin-api';
import { ClockError } from '@certflow/clock';
import { clockRoutes, openEmulatorClock, type EmulatorClock, type OpenedClock } from './clock-route';
import { GRAPH_BETA_PREFIX, GRAPH_PREFIX, handleGraphRequest, isGraphPath } from './graph-api';
import { clientAddress, SIGN_IN_LOG_CAPACITY, SignInDraft, SignInLog } from './sign-in-log';
import { isCrossOrigin, isPortalPath, servePortal } from './portal';
import { BodyTooLargeError, headerValue, mediaType, readBody, sendJson } from './http-io';
import { isGuid } from '@certflow/claims';
import { newGuid } from './ids';
import { completeSigningKeys, rotatedSigningKeys, SigningKeyCache, type KeyRing } from './signing-key-ring';
import { signCompactJwt } from './signing-keys';
import { lockStateDirectory, type StateDirLock } from './state-dir-lock';
import { damaged, loadState, saveState, statePath, type EmulatorState } from './state-store';
import { handleTokenRequest } from './token-endpoint';
import { testTokensRoute } from './test-tokens';

export interface RunningEmulator extends EmulatorInfo {
  close(): Promise<void>;
  /** Signs any payload with the current token-signing key (default header `typ JWT, alg RS256, kid`), for hostile-token tests. */
  signAccessToken(payload: Record<string, unknown>, header?: Record<string, unknown>): Promise<string>;
  /**
   * Rotates the token-signing key: the key already published in JWKS as the next one starts
   * signing, a new next key is published, and the old key stays in JWKS until the tokens it
   * signed have expired. Persisted in the state. Resolves with the new signing key's `kid`.
   */
  rotateSigningKey(): Promise<{ kid: string }>;
  /**
   * Changes the faults injected into the token endpoints: the given fields are merged into the
   * current settings (`NO_FAULTS` turns everything off). Returns the settings now in force.
   */
  setFaults(faults: Partial<FaultSettings>): FaultSettings;
  /** The tenant's service-principal sign-in log (sign-in-log.ts), served by Graph beta at /auditLogs/signIns. */
  signInLog: SignInLog;
  /** The clock everything here judges time by; `set` and `advance` also write the clock file (clock-route.ts). */
  clock: EmulatorClock;
}

const TOKEN_BODY_LIMIT = 64 * 1024;
const COMMON_TENANTS = new Set(['common', 'organizations', 'consumers']);

export async function startEmulator(options: EmulatorOptions): Promise<RunningEmulator> {
  const settings = validateOptions(options);
  const stateDir = resolve(options.stateDir);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  // Before anything in the directory is read: a second emulator on it stops here, changing nothing.
  const lock = lockStateDirectory(stateDir);
  let clock: OpenedClock | undefined;
  try {
    clock = openClock(options, settings);
    return await startLocked(options, settings, stateDir, lock, clock);
  } catch (err) {
    clock?.close();
    lock.release();
    throw err;
  }
}

/** The shifted clock (clock-route.ts); a clock file that cannot be read or written stops the start, naming the option. */
function openClock(options: EmulatorOptions, settings: EmulatorSettings): OpenedClock {
  try {
    return openEmulatorClock({
      ...(options.now ? { base: options.now } : {}),
      ...(settings.clockOffset !== undefined ? { offsetMs: settings.clockOffset } : {}),
      ...(settings.clockFile !== undefined ? { file: resolve(settings.clockFile) } : {}),
      onFileError: (err) => console.error(`entra-emulator: ${err.message}; the clock stays as it was`),
    });
  } catch (err) {
    if (!(err instanceof ClockError)) throw err;
    throw new EmulatorError('ERR_INVALID_OPTIONS', `startEmulator: clockFile: ${err.message}`, {
      cause: err,
    });
  }
}

async function startLocked(
  options: EmulatorOptions,
  settings: EmulatorSettings,
  stateDir: string,
  lock: StateDirLock,
  { clock: emulatorClock, close: closeClock }: OpenedClock,
): Promise<RunningEmulator> {
  const clock = (): Date => emulatorClock.now();
  // The unshifted time (the real one, or the `now` option's), from which the clock's range is reckoned.
  const realNow = (): Date => new Date(emulatorClock.now().getTime() - emulatorClock.offsetMs);

  // Read everything that exists before creating anything, so a damaged file stops start-up untouched.
  const stored = loadState(stateDir);
  const previousInfo = readEmulatorInfoIfPresent(stateDir);
  const ca = DevelopmentCa.loadOrCreate(stateDir);

  let state: EmulatorState;
  let adminSecret: string | undefined;
  if (stored) {
    // Saved by an earlier version: completed (admin permissions) and saved atomically before use.
    state = upgradeState(stored, clock()) ?? stored;
    if (state !== stored) saveState(stateDir, state);
  } else {
    ({ state, adminSecret } = createInitialState(clock(), realNow()));
    saveState(stateDir, state);
  }
  const keyCache = new SigningKeyCache();
  loadSigningKeys(stateDir, state, keyCache);
  const directory = new Directory(stateDir, state, clock);
  // Tokens signed by a key that is rotated out stay valid this long: the longest lifetime plus the skew validators allow.
  const retirementGraceMs = (maxLifetime(settings.lifetime) + settings.clockSkewSeconds) * 1000;
  const completed = completeSigningKeys(
    directory.state.signingKeys,
    clock(),
    new Date(clock().getTime() + retirementGraceMs),
  );
  if (completed) directory.replaceSigningKeys(completed);
  const keyRing = () => keyCache.ring(directory.state.signingKeys, clock());
  if (adminSecret === undefined)
    adminSecret =
      reusableAdminSecret(directory, previousInfo, realNow()) ??
      directory.replaceAdminSecret(adminSecretValidity(realNow()));

  const tls = ca.issueServerCertificate();
  const replayGuard = settings.rejectReplayedAssertions ? new ReplayGuard() : undefined;
  const faults = new FaultInjector(options.faults ?? {});
  const metrics = new Metrics();
  const signInLog: SignInLog = new SignInLog({
    capacity: SIGN_IN_LOG_CAPACITY,
    now: clock,
    onRecord: (record, dropped) =>
      metrics.signInRecorded(
        record.attempt.minted ? 'minted' : record.attempt.errorCode === 0 ? 'success' : 'failure',
        signInLog.size,
        dropped,
      ),
  });
  const clockAdminRoutes = clockRoutes(emulatorClock);
  // Filled in once listening: the URLs depend on the port the system picked.
  const started: { info?: EmulatorInfo } = {};
  // Made once listening, from the address actually bound (no request arrives before).
  let checkHostAndOrigin: (req: IncomingMessage) => GuardDecision = () => ({
    ok: false,
    status: 421,
    reason: 'not listening yet',
  });

  const server = createServer({ key: tls.privateKeyPem, cert: tls.certificatePem }, (req, res) => {
    const guard = checkHostAndOrigin(req);
    if (!guard.ok) {
      refuseRequest(req, res, guard);
      return;
    }
    const { info } = started;
    if (!info) {
      sendJson(res, 503, { error: 'starting' });
      return;
    }
    const hook = options.onRequest;
    if (hook)
      Promise.resolve(hook(req, res)).then(
        (go) => void (go === false || handle(req, res, info)),
        (err: unknown) => {
          console.error(`entra-emulator: onRequest failed: ${(err as Error)?.stack ?? String(err)}`);
          req.socket.destroy();
        },
      );
    else handle(req, res, info);
  });
  const handle = (req: IncomingMessage, res: ServerResponse, info: EmulatorInfo): void => {
    handleRequest(req, res, {
      info,
      directory,
      keyRing: keyRing(),
      now: clock(),
      rotateSigningKey: () => rotate(),
      faults,
      clockRoutes: clockAdminRoutes,
      metrics,
      signInLog,
      clockSkewSeconds: settings.clockSkewSeconds,
      lifetime: settings.lifetime,
      port,
      ...(replayGuard ? { replayGuard } : {}),
    }).catch((err: unknown) => {
      console.error(`entra-emulator: unexpected error: ${(err as Error)?.stack ?? String(err)}`);
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
    });
  };
  await listen(server, settings.port, settings.host);
  const { address, port } = server.address() as AddressInfo;
  checkHostAndOrigin = loopbackGuard({
    scheme: 'https',
    boundToLoopback: isLoopbackAddress(address),
    allowedHosts: settings.allowedHosts,
  });
  const info = describeEmulator(`https://localhost:${port}`, state.tenant, ca.certificatePath, {
    clientId: state.adminAppId,
    clientSecret: adminSecret,
  });
  writeEmulatorInfo(stateDir, info);
  started.info = info;

  const rotate = async (): Promise<{ kid: string }> => {
    const now = clock();
    const { keys, activeKid } = rotatedSigningKeys(
      directory.state.signingKeys,
      now,
      new Date(now.getTime() + retirementGraceMs),
    );
    directory.replaceSigningKeys(keys);
    metrics.signingKeyRotated();
    return { kid: activeKid };
  };

  let closing: Promise<void> | undefined;
  const running: RunningEmulator = {
    ...info,
    close: () =>
      (closing ??= new Promise<void>((done) => {
        server.close(() => {
          closeClock();
          lock.release();
          done();
        });
        server.closeAllConnections();
      })),
    rotateSigningKey: () => rotate(),
    setFaults: (patch) => faults.update(patch),
    signInLog,
    clock: emulatorClock,
    signAccessToken: async (payload, header = {}) => {
      const key = keyRing().active;
      return signCompactJwt(key, { typ: 'JWT', alg: 'RS256', kid: key.kid, ...header }, payload);
    },
  };
  return running;
}

/** A refused Host (421, connection closed) or Origin (403), in Graph's error shape on Graph and admin paths. */
function refuseRequest(
  req: IncomingMessage,
  res: ServerResponse,
  guard: GuardDecision & { ok: false },
): void {
  req.resume(); // nothing of the request is read
  const path = (req.url ?? '').split('?')[0]!;
  const graph = [GRAPH_PREFIX, GRAPH_BETA_PREFIX, ADMIN_PREFIX].some(
    (p) => path === p || path.startsWith(`${p}/`),
  );
  const headers = guard.status === 421 ? { connection: 'close' } : {};
  if (graph) {
    const code = guard.status === 421 ? 'Request_BadRequest' : 'Authorization_RequestDenied';
    sendJson(res, guard.status, { error: { code, message: guard.reason } }, headers);
    return;
  }
  sendJson(
    res,
    guard.status,
    { error: guard.status === 421 ? 'invalid_request' : 'access_denied', error_description: guard.reason },
    headers,
  );
}

interface RequestContext {
  info: EmulatorInfo;
  directory: Directory;
  keyRing: KeyRing;
  rotateSigningKey: () => Promise<{ kid: string }>;
  faults: FaultInjector;
  clockRoutes: Record<string, AdminRoute>;
  metrics: Metrics;
  signInLog: SignInLog;
  now: Date;
  clockSkewSeconds: number;
  lifetime: TokenLifetime;
  port: number;
  replayGuard?: ReplayGuard;
}

async function handleRequest(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
  let url: URL;
  try {
    // Concatenated rather than resolved against a base, so `//host/...` cannot change the host.
    url = new URL(`https://localhost${req.url ?? '/'}`);
  } catch {
    sendJson(res, 400, {
      error: 'invalid_request',
      error_description: 'The request target is not a valid path.',
    });
    return;
  }
  if (url.pathname === '/metrics') {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(
        res,
        405,
        { error: 'invalid_request', error_description: 'Only GET is supported here.' },
        { allow: 'GET' },
      );
      return;
    }
    const text = await ctx.metrics.render();
    res.writeHead(200, {
      'content-type': PROMETHEUS_CONTENT_TYPE,
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : text);
    return;
  }
  if (isPortalPath(url.pathname)) {
    servePortal(req, res, url.pathname, { tenantId: ctx.info.tenantId, adminAppId: ctx.info.admin.clientId });
    return;
  }
  const isAdmin = url.pathname === ADMIN_PREFIX || url.pathname.startsWith(`${ADMIN_PREFIX}/`);
  const isGraph = isGraphPath(url.pathname);
  if ((isAdmin || isGraph) && isCrossOrigin(req)) {
    sendJson(res, 403, {
      error: { code: 'Authorization_RequestDenied', message: 'Requests from another origin are refused.' },
    });
    return;
  }
  if (isAdmin) {
    await handleAdminRequest(req, res, url, {
      signingKeys: ctx.keyRing.published,
      baseUrl: ctx.info.url,
      tenantId: ctx.info.tenantId,
      adminAppId: ctx.info.admin.clientId,
      now: ctx.now,
      clockSkewSeconds: ctx.clockSkewSeconds,
      storedSigningKeys: () => ctx.directory.state.signingKeys,
      rotateSigningKey: ctx.rotateSigningKey,
      routes: {
        faults: faultsRoute(ctx.faults),
        ...ctx.clockRoutes,
        testTokens: testTokensRoute({
          directory: ctx.directory,
          signingKey: ctx.keyRing.active,
          baseUrl: ctx.info.url,
          now: ctx.now,
          ipAddress: clientAddress(req.socket.remoteAddress),
          recordSignIn: (attempt) => ctx.signInLog.record(attempt),
        }),
      },
    });
    return;
  }
  if (isGraph) {
    await handleGraphRequest(req, res, url, {
      directory: ctx.directory,
      signingKeys: ctx.keyRing.published,
      baseUrl: ctx.info.url,
      tenantId: ctx.info.tenantId,
      now: ctx.now,
      clockSkewSeconds: ctx.clockSkewSeconds,
      signInLog: ctx.signInLog,
    });
    return;
  }

  const match =
    /^\/([^/]+)\/((?:v2\.0\/)?\.well-known\/openid-configuration|discovery\/(?:v2\.0\/)?keys|oauth2\/(?:v2\.0\/)?token)$/.exec(
      url.pathname,
    );
  if (!match) {
    sendJson(res, 404, {
      error: 'not_found',
      error_description: `No such endpoint: ${url.pathname.slice(0, 200)}`,
    });
    return;
  }
  const [, tenantSegment, endpoint] = match as unknown as [string, string, string];
  const correlationId = correlationIdOf(req, url);
  const traceId = newGuid();
  const idHeaders = { 'x-ms-request-id': traceId, 'client-request-id': correlationId };
  const isToken = endpoint.startsWith('oauth2');
  const started = process.hrtime.bigint();
  let clientId: string | undefined;
  // Set once the request reached this tenant's token endpoint: injected faults and requests
  // for other tenants are not in its sign-in log (Entra never processed them for it).
  let signIn: SignInDraft | undefined;
  const record = (outcome: TokenOutcome, code?: number, reason?: string) => {
    if (!isToken) return;
    ctx.metrics.tokenRequest(clientId, outcome, code, Number(process.hrtime.bigint() - started) / 1e9);
    signIn?.finish(code ?? 0, reason);
  };
  try {
    if (isToken) {
      const fault = await ctx.faults.decide();
      if (fault.kind === 'drop') {
        record('fault');
        req.socket.destroy();
        return;
      }
      if (fault.kind !== 'none') {
        const retryAfter = String(ctx.faults.current.retryAfterSeconds);
        const status = ctx.faults.current.serverErrorStatus;
        const err =
          fault.kind === 'throttle'
            ? entraErrors.throttled()
            : fault.kind === 'outage'
              ? entraErrors.unavailable(503)
              : status === 500
                ? entraErrors.serverError()
                : entraErrors.unavailable(status);
        record('fault', err.aadsts);
        const withRetryAfter = fault.kind === 'throttle' || fault.kind === 'outage' || err.status === 503;
        sendJson(res, err.status, entraErrorBody(err, { traceId, correlationId }, ctx.now), {
          ...idHeaders,
          ...(withRetryAfter ? { 'retry-after': retryAfter } : {}),
        });
        return;
      }
    }
    const tenant = resolveTenant(tenantSegment, ctx.directory, isToken);
    const v1 = !endpoint.includes('v2.0');
    if (isToken) {
      signIn = new SignInDraft(ctx.signInLog, {
        ipAddress: clientAddress(req.socket.remoteAddress),
        correlationId,
        requestId: traceId,
        at: ctx.now,
        startedNs: started,
      });
      if (req.method !== 'POST') throw entraErrors.postOnly(req.method ?? 'GET');
      let body: Buffer;
      try {
        body = await readBody(req, TOKEN_BODY_LIMIT);
      } catch (err) {
        if (err instanceof BodyTooLargeError) throw entraErrors.bodyTooLarge(err.limit);
        throw err;
      }
      const response = await handleTokenRequest(
        TokenForm.parse(mediaType(req), body),
        headerValue(req, 'authorization'),
        {
          directory: ctx.directory,
          signingKey: ctx.keyRing.active,
          baseUrl: ctx.info.url,
          // The v1 endpoint also takes assertions addressed to the v2.0 one.
          audiences: assertionAudiences(
            ctx,
            req,
            tenant,
            v1 ? ['oauth2/token', 'oauth2/v2.0/token'] : ['oauth2/v2.0/token'],
          ),
          now: ctx.now,
          clockSkewSeconds: ctx.clockSkewSeconds,
          lifetime: ctx.lifetime,
          protocol: v1 ? 1 : 2,
          onClient: (client) => {
            clientId = client.appId;
            signIn?.client(client);
          },
          onCredential: (credential) => signIn?.credential(credential),
          onResource: (resource) => signIn?.resource(resource),
          onIssued: (issued) => ctx.metrics.tokenIssued(issued),
          ...(ctx.replayGuard ? { replayGuard: ctx.replayGuard } : {}),
        },
      );
      record('success');
      sendJson(res, 200, response, idHeaders);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(
        res,
        405,
        { error: 'invalid_request', error_description: 'Only GET is supported here.' },
        { allow: 'GET' },
      );
      return;
    }
    const issuer = v1 ? v1Issuer(ctx.info.tenantId) : `${ctx.info.url}/${ctx.info.tenantId}/v2.0`;
    const document = endpoint.startsWith('discovery')
      ? jwks(ctx.keyRing.published, issuer)
      : v1
        ? openIdConfigurationV1(ctx.info.url, ctx.info.tenantId)
        : openIdConfiguration(ctx.info.url, ctx.info.tenantId);
    sendJson(res, 200, document, {
      ...idHeaders,
      'cache-control': DISCOVERY_CACHE_CONTROL,
      pragma: undefined,
    });
  } catch (err) {
    if (!(err instanceof EntraError)) {
      const unexpected = entraErrors.serverError();
      record('error', unexpected.aadsts, unexpected.description);
      throw err;
    }
    record('error', err.aadsts, err.description);
    sendJson(res, err.status, entraErrorBody(err, { traceId, correlationId }, ctx.now), {
      ...idHeaders,
      ...(err.status === 413 ? { connection: 'close' } : {}),
    });
  }
}

function resolveTenant(
  segment: string,
  directory: Directory,
  isTokenEndpoint: boolean,
): EmulatorState['tenant'] {
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    name = segment;
  }
  const lower = name.toLowerCase();
  const { tenant } = directory;
  if (lower === tenant.id || lower === tenant.domain) return tenant;
  if (isTokenEndpoint && COMMON_TENANTS.has(lower)) throw entraErrors.commonEndpoint();
  throw entraErrors.tenantNotFound(name.slice(0, 100));
}

/**
 * The URLs a client assertion may carry as `aud`: this tenant's token endpoint by GUID or
 * domain, under the advertised origin or the local origin the client actually connected to.
 */
function assertionAudiences(
  ctx: RequestContext,
  req: IncomingMessage,
  tenant: EmulatorState['tenant'],
  paths: string[],
): string[] {
  const origins = new Set([ctx.info.url]);
  const host = headerValue(req, 'host')?.toLowerCase();
  if (host && new RegExp(`^(localhost|127\\.0\\.0\\.1|\\[::1\\]):${ctx.port}$`).test(host))
    origins.add(`https://${host}`);
  return [...origins].flatMap((origin) =>
    [tenant.id, tenant.domain].flatMap((t) => paths.map((path) => `${origin}/${t}/${path}`)),
  );
}

/** Entra echoes a GUID `client-request-id` as the correlation id, and makes one up otherwise. */
function correlationIdOf(req: IncomingMessage, url: URL): string {
  const candidate = url.searchParams.get('client-request-id') ?? headerValue(req, 'client-request-id');
  return isGuid(candidate) ? candidate.toLowerCase() : newGuid();
}

/** Loads every stored key once at start, so a damaged one stops start-up naming the file. */
function loadSigningKeys(stateDir: string, state: EmulatorState, cache: SigningKeyCache): void {
  state.signingKeys.forEach((stored, i) => {
    try {
      cache.get(stored);
    } catch (err) {
      throw damaged(statePath(stateDir), `signingKeys[${i}] is unusable (${(err as Error).message})`, err);
    }
  });
}

function maxLifetime(lifetime: TokenLifetime): number {
  return typeof lifetime === 'number' ? lifetime : lifetime.max;
}

/**
 * The admin secret from the previous emulator.json, if it matches an admin credential valid at
 * every time the clock can show (bootstrap.ts adminSecretCoversClock).
 */
function reusableAdminSecret(
  directory: Directory,
  previous: EmulatorInfo | undefined,
  realNow: Date,
): string | undefined {
  const admin = directory.applicationByAppId(directory.state.adminAppId);
  if (!admin || !previous || previous.admin.clientId !== admin.appId) return undefined;
  const valid = admin.passwordCredentials.some(
    (p) => clientSecretMatches(previous.admin.clientSecret, p) && adminSecretCoversClock(p, realNow),
  );
  return valid ? previous.admin.clientSecret : undefined;
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolveListen, reject) => {
    const onError = (err: NodeJS.ErrnoException) =>
      reject(
        new EmulatorError(
          'ERR_LISTEN_FAILED',
          `cannot listen on ${host}:${port}: ${err.code ?? err.message}`,
          { cause: err },
        ),
      );
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolveListen();
    });
  });
}
