/**
 * Steps 5 and 6: MSAL's ConfidentialClientApplication signs a client assertion with the
 * partner's private key (PS256, `x5t#S256`) and exchanges it for an access token. A key in a
 * file goes to MSAL's `clientCertificate`; a key in a PKCS#11 token never reaches this process,
 * so MSAL's `clientAssertion` callback has the same assertion signed through the token.
 *
 * What this wrapper adds to MSAL (each measured against MSAL 7 and the emulator; the tests in
 * certificate-token-client.spec.ts and api-client.resilience.spec.ts show the behaviour):
 * - an offline-capable configuration: `knownAuthorities` = host WITH port, `authorityMetadata`
 *   so that no discovery request is made, a network client that trusts the configured CA;
 * - one MSAL instance per client (each instance has its own cache);
 * - single-flight: concurrent callers share one in-flight acquisition (MSAL alone sends one
 *   token request per caller when the cache is cold);
 * - an empty `access_token` is an error (MSAL reports it as a success);
 * - errors carry the AADSTS code and the real transport cause;
 * - its own client-side throttle after a 429 or 5xx, per scope: exponential from 1 s to 60 s, or
 *   the authority's `Retry-After` when that is longer (capped at an hour, as MSAL does).
 *   Until then a request fails at once without reaching the authority (`ERR_THROTTLED`, with
 *   `retryAt`), as MSAL's would; after it, MSAL's own throttle is cleared. MSAL blocks for a
 *   flat 60 s after any 5xx without `Retry-After`, even with `skipCache` (measured), which can
 *   outlast the refresh window of a token whose authority has just come back.
 */
import {
  AuthError,
  ConfidentialClientApplication,
  type Configuration,
  LogLevel,
  type AuthenticationResult,
  type INetworkModule,
  type NetworkRequestOptions,
  type NetworkResponse,
} from '@azure/msal-node';
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { KeySigner, ParsedCertificate } from '@certflow/certs';
import { isSystemClock, systemClock, type Clock } from '@certflow/clock';

/**
 * A key in a file goes to MSAL as it is (its own `clientCertificate` path); a key that cannot
 * leave its token (no `privateKeyPem`) signs MSAL's client assertion through `signer`.
 */
export interface TokenClientCredential {
  certificate: ParsedCertificate;
  signer: KeySigner;
  privateKeyPem?: string;
}

/** Client assertions live this long (MSAL's own certificate path uses 10 minutes too). */
const ASSERTION_LIFETIME_S = 600;

/**
 * The client assertion MSAL makes for `clientCertificate` with `thumbprintSha256` (PS256 with
 * `x5t#S256`; claims aud, exp, iss, sub, nbf, jti), signed through the credential's signer.
 */
export async function signClientAssertion(
  credential: Pick<TokenClientCredential, 'certificate' | 'signer'>,
  clientId: string,
  tokenEndpoint: string,
  now = Date.now(),
): Promise<string> {
  const nbf = Math.floor(now / 1000);
  const header = { alg: 'PS256', typ: 'JWT', 'x5t#S256': credential.certificate.thumbprints.sha256Base64Url };
  const claims = {
    aud: tokenEndpoint,
    exp: nbf + ASSERTION_LIFETIME_S,
    iss: clientId,
    sub: clientId,
    nbf,
    jti: randomUUID(),
  };
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const signature = await credential.signer.sign('PS256', Buffer.from(input));
  return `${input}.${signature.toString('base64url')}`;
}

export interface CertificateTokenClientOptions {
  /** e.g. `https://login.microsoftonline.com` or `https://localhost:PORT` (no trailing slash, no path). */
  entraInstance: string;
  tenantId: string;
  clientId: string;
  /** One scope ending in `/.default`. */
  scope: string;
  credential: TokenClientCredential;
  networkClient: INetworkModule;
  /**
   * The time assertions are signed with and tokens' `expiresOn` is given in (default: the real
   * time). Any other clock (a test stack's shifted one) signs every assertion itself through
   * MSAL's `clientAssertion` callback: MSAL's own certificate path uses the real time.
   */
  clock?: Clock;
}

export interface AcquiredToken {
  accessToken: string;
  expiresOn: Date;
  /**
   * `cache` when answered from a cache without a request to the authority; `shared` when another
   * replica's token was taken from the shared (Redis) cache.
   */
  source: 'network' | 'cache' | 'shared';
}

export interface GetTokenOptions {
  /** Ask the authority for a new token even if a cached one is still valid (e.g. after a 401). */
  forceRefresh?: boolean;
  /**
   * The token the API just refused (401). With forceRefresh, a cache that already holds a
   * different token returns it instead of asking again (many callers, one refresh).
   */
  rejectedToken?: string;
}

export interface TokenProvider {
  getToken(options?: GetTokenOptions): Promise<AcquiredToken>;
}

export class TokenAcquisitionError extends Error {
  override readonly name = 'TokenAcquisitionError';
  constructor(
    /** MSAL's error code (`invalid_client`, `network_error`, …) or ERR_EMPTY_TOKEN. */
    readonly code: string,
    message: string,
    /** The Entra error number, e.g. `700027` for a certificate that is not registered. */
    readonly aadsts?: string,
    options?: { cause?: unknown; retryAt?: number },
  ) {
    super(message, options);
    if (options?.retryAt !== undefined) this.retryAt = options.retryAt;
  }

  /** Epoch ms before which the client will not ask the authority again (after a 429/5xx). */
  readonly retryAt?: number;
}

/**
 * The thumbprint as MSAL needs it: plain hex. MSAL silently mangles colon-separated hex and
 * base64 (the server then rejects the assertion), so anything else is refused here.
 */
export function toThumbprintHex(value: string, bytes: 20 | 32 = 32): string {
  const hex = value.replace(/:/g, '').trim().toUpperCase();
  if (!new RegExp(`^[0-9A-F]{${bytes * 2}}$`).test(hex)) {
    throw new TypeError(
      `expected a ${bytes * 8 === 160 ? 'SHA-1' : 'SHA-256'} thumbprint as ${bytes * 2} hex digits, got "${value}"`,
    );
  }
  return hex;
}

export function authorityFor(entraInstance: string, tenantId: string): string {
  return `${entraInstance.replace(/\/+$/, '')}/${tenantId}`;
}

/** What happened during one acquisition, below MSAL. */
interface AttemptContext {
  transportError?: Error;
  /** The token endpoint's answer: status and `Retry-After` (ms), when one came. */
  response?: { status: number; retryAfterMs?: number };
}

const THROTTLE_BASE_MS = 1_000;
const THROTTLE_MAX_MS = 60_000;
const MAX_RETRY_AFTER_MS = 3_600_000;
/** MSAL treats a cached token with this little left as expired. */
const MSAL_EXPIRY_MARGIN_MS = 300_000;

/** `Retry-After` as delay-seconds or an HTTP date, in ms from `now`; undefined when absent or unreadable. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const ms = /^\d+$/.test(value.trim()) ? Number(value.trim()) * 1000 : Date.parse(value) - now;
  return Number.isFinite(ms) ? Math.min(Math.max(0, ms), MAX_RETRY_AFTER_MS) : undefined;
}

function header(headers: Record<string, string> | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : headers[key];
}

/**
 * Passes requests to the real network client and remembers what it threw: MSAL turns any
 * such error into a bare `network_error` ("See https://aka.ms/…"), losing the cause.
 */
class CauseRecordingNetworkClient implements INetworkModule {
  constructor(
    private readonly inner: INetworkModule,
    private readonly attempts: AsyncLocalStorage<AttemptContext>,
  ) {}

  sendGetRequestAsync<T>(
    url: string,
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    return this.record(this.inner.sendGetRequestAsync<T>(url, options, timeout));
  }

  sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    return this.record(this.inner.sendPostRequestAsync<T>(url, options));
  }

  private async record<T>(pending: Promise<NetworkResponse<T>>): Promise<NetworkResponse<T>> {
    const attempt = this.attempts.getStore();
    try {
      const response = await pending;
      if (attempt) {
        const wait = retryAfterMs(header(response.headers, 'retry-after'));
        attempt.response = { status: response.status, ...(wait !== undefined ? { retryAfterMs: wait } : {}) };
      }
      return response;
    } catch (err) {
      if (attempt) attempt.transportError = err as Error;
      throw err;
    }
  }
}

function errorFrom(
  err: unknown,
  scope: string,
  attempt: AttemptContext,
  retryAt?: number,
): TokenAcquisitionError {
  if (err instanceof TokenAcquisitionError) return err;
  const later = retryAt !== undefined ? { retryAt } : {};
  if (attempt.transportError) {
    return new TokenAcquisitionError(
      'network_error',
      `token request for ${scope} failed: ${attempt.transportError.message}`,
      undefined,
      {
        cause: attempt.transportError,
        ...later,
      },
    );
  }
  if (err instanceof AuthError) {
    const aadsts = /AADSTS(\d+)/.exec(err.errorMessage)?.[1];
    const detail = err.errorMessage ? `${err.errorCode}: ${err.errorMessage}` : err.errorCode;
    return new TokenAcquisitionError(err.errorCode, `token request for ${scope} failed: ${detail}`, aadsts, {
      cause: err,
      ...later,
    });
  }
  return new TokenAcquisitionError(
    'ERR_UNEXPECTED',
    `token request for ${scope} failed: ${(err as Error).message ?? String(err)}`,
    undefined,
    {
      cause: err,
      ...later,
    },
  );
}

function clientCredentialOf(
  credential: TokenClientCredential,
  tokenEndpoint: string,
  clock: Clock,
): Pick<Configuration['auth'], 'clientCertificate' | 'clientAssertion'> {
  const { privateKeyPem } = credential;
  if (privateKeyPem !== undefined && isSystemClock(clock))
    return {
      clientCertificate: {
        thumbprintSha256: toThumbprintHex(credential.certificate.thumbprints.sha256Hex),
        privateKey: privateKeyPem,
      },
    };
  return {
    clientAssertion: (config) =>
      signClientAssertion(credential, config.clientId, config.tokenEndpoint ?? tokenEndpoint, clock.nowMs()),
  };
}

export class CertificateTokenClient implements TokenProvider {
  readonly authority: string;
  readonly scope: string;
  private readonly clock: Clock;
  private readonly cca: ConfidentialClientApplication;
  private readonly inFlight = new Map<'cached' | 'refresh', Promise<AcquiredToken>>();
  private readonly attempts = new AsyncLocalStorage<AttemptContext>();
  /** Per scope: consecutive 429/5xx answers and the time before which none is asked for again. */
  private readonly throttles = new Map<string, { failures: number; until: number; retryAfter: boolean }>();

  constructor(opts: CertificateTokenClientOptions) {
    this.authority = authorityFor(opts.entraInstance, opts.tenantId);
    this.scope = opts.scope;
    this.clock = opts.clock ?? systemClock;
    const host = new URL(opts.entraInstance).host; // includes a non-default port, as MSAL requires
    this.cca = new ConfidentialClientApplication({
      auth: {
        clientId: opts.clientId,
        authority: this.authority,
        knownAuthorities: [host],
        authorityMetadata: JSON.stringify({
          token_endpoint: `${this.authority}/oauth2/v2.0/token`,
          authorization_endpoint: `${this.authority}/oauth2/v2.0/authorize`,
          issuer: `${this.authority}/v2.0`,
          jwks_uri: `${this.authority}/discovery/v2.0/keys`,
        }),
        ...clientCredentialOf(opts.credential, `${this.authority}/oauth2/v2.0/token`, this.clock),
      },
      system: {
        networkClient: new CauseRecordingNetworkClient(opts.networkClient, this.attempts),
        loggerOptions: { logLevel: LogLevel.Error, piiLoggingEnabled: false, loggerCallback: () => {} },
      },
    });
  }

  /** A token for the configured scope; concurrent callers share one acquisition. */
  getToken(options: GetTokenOptions = {}): Promise<AcquiredToken> {
    const key = options.forceRefresh ? 'refresh' : 'cached';
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    const attempt = this.acquire(options.forceRefresh === true).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, attempt);
    return attempt;
  }

  /**
   * One acquisition through MSAL, without certflow's single-flight: `skipCache` always asks the
   * authority (MSAL treats a token with under 300 s left as expired, so certflow's TokenCache
   * refreshes with skipCache and keeps its own copy). `scope` defaults to the configured one.
   */
  fetchToken(options: { scope?: string; skipCache?: boolean } = {}): Promise<AcquiredToken> {
    return this.acquire(options.skipCache === true, options.scope ?? this.scope);
  }

  private async acquire(skipCache: boolean, scope: string = this.scope): Promise<AcquiredToken> {
    // The throttle and Retry-After are about the network, not about token lifetimes: real time.
    const throttle = this.throttles.get(scope);
    if (throttle && throttle.until > 0) {
      if (Date.now() < throttle.until) {
        const why = throttle.retryAfter ? "the authority's Retry-After" : 'backing off';
        throw new TokenAcquisitionError(
          'ERR_THROTTLED',
          `token request for ${scope} not sent: the authority failed ${throttle.failures} time(s) in a row (${why}); next attempt at ${new Date(throttle.until).toISOString()}`,
          undefined,
          { retryAt: throttle.until },
        );
      }
      // Ours has passed: MSAL's flat 60 s must not block the retry. clearCache also drops MSAL's
      // cached tokens (only getToken without forceRefresh reads them; it then asks again), and
      // runs once per window: the failure count stays, the window is spent.
      this.cca.clearCache();
      throttle.until = 0;
    }
    const attempt: AttemptContext = {};
    let result: AuthenticationResult | null;
    try {
      result = await this.attempts.run(attempt, () =>
        this.cca.acquireTokenByClientCredential({ scopes: [scope], skipCache }),
      );
    } catch (err) {
      const status = attempt.response?.status ?? 0;
      if (status === 429 || status >= 500) {
        // Read now, not before the request: concurrent failures keep counting up.
        const failures = (this.throttles.get(scope)?.failures ?? 0) + 1;
        const backoff = Math.min(THROTTLE_MAX_MS, THROTTLE_BASE_MS * 2 ** (failures - 1));
        // A Retry-After of 0 or in the past never switches the backoff off.
        const explicit = attempt.response?.retryAfterMs;
        const wait = Math.max(explicit ?? 0, backoff);
        const until = Date.now() + wait;
        this.throttles.set(scope, {
          failures,
          until,
          retryAfter: explicit !== undefined && explicit >= backoff,
        });
        throw errorFrom(err, scope, attempt, until);
      }
      throw errorFrom(err, scope, attempt);
    }
    this.throttles.delete(scope);
    if (!result || !result.accessToken) {
      throw new TokenAcquisitionError(
        'ERR_EMPTY_TOKEN',
        `the authority answered without an access_token for ${scope}`,
      );
    }
    if (!result.expiresOn) {
      throw new TokenAcquisitionError(
        'ERR_EMPTY_TOKEN',
        `the authority answered without expires_in for ${scope}`,
      );
    }
    // MSAL dates the token by the real time; on a shifted clock it expires that much later.
    const expiresOn = new Date(result.expiresOn.getTime() + this.clock.offsetMs);
    // MSAL judged its cached token by the real time too: ask again when, on this clock, it has
    // no more than MSAL's own 5 minutes left (never with the real time: MSAL already did).
    if (result.fromCache && expiresOn.getTime() - this.clock.nowMs() <= MSAL_EXPIRY_MARGIN_MS)
      return this.acquire(true, scope);
    return { accessToken: result.accessToken, expiresOn, source: result.fromCache ? 'cache' : 'network' };
  }
}
