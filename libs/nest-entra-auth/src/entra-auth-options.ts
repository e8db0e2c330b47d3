/**
 * What `EntraAuthModule.forRoot(options)` needs to know: where the tenants' OpenID metadata is
 * (an instance and tenant ids), which audiences and token versions to accept, and who may call.
 * Validated once at start-up; a bad value throws {@link EntraAuthOptionsError} naming the option.
 *
 * @example
 *   validateEntraAuthOptions({ instance: 'https://login.microsoftonline.com', tenantIds: [tid], audiences: [appId] });
 */
import { X509Certificate } from 'node:crypto';
import { isGuid, type AccessTokenVersion } from '@certflow/claims';
import { systemClock, type Clock } from '@certflow/clock';

export interface EntraAuthOptions {
  /**
   * Base URL of the authority: `https://login.microsoftonline.com` (public cloud),
   * `https://login.microsoftonline.us`, `https://login.chinacloudapi.cn`, or an emulator.
   * The tenant's metadata is read from `{instance}/{tenantId}/v2.0/.well-known/openid-configuration`
   * (and `{instance}/{tenantId}/.well-known/openid-configuration` when v1 tokens are accepted).
   */
  instance: string;
  /** Tenant GUIDs whose tokens are accepted. */
  tenantIds: readonly string[];
  /** Accepted `aud` values (the API's app id, its App ID URI). */
  audiences: readonly string[];
  /** Access-token versions accepted (default both, `1.0` and `2.0`). */
  acceptedTokenVersions?: readonly AccessTokenVersion[];
  /** Client app ids allowed to call; empty or absent: any client of the tenants. */
  allowedClientIds?: readonly string[];
  /** Only tokens whose client authenticated with a certificate (`azpacr`/`appidacr` "2"); default false. */
  requireCertificateClients?: boolean;
  /** Verified tokens remembered so that a repeated token skips the RSA check (default 10 000; 0 disables). */
  tokenCacheSize?: number;
  /** Extra CA certificates (PEM) trusted besides the system roots when reading metadata and keys. */
  ca?: string;
  /** Retry of a failed discovery: first delay, doubled up to the cap (defaults 500 ms and 30 s). */
  discoveryRetry?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Time limit of one metadata or JWKS request (default 10 s). */
  requestTimeoutMs?: number;
  /**
   * Fields added to the log line of each refused request (`auth_rejected`), from the request
   * (the platform's request object): for example its trace and request ids.
   */
  logFields?: (request: object) => object | undefined;
  /**
   * The time `exp` and `nbf` are judged by, for every token (cached ones too). Default: the real
   * time. A process that follows a shifted test clock passes `clockFromEnvironment()` from
   * `@certflow/clock`; the library never reads those variables by itself.
   */
  clock?: Clock;
}

export interface ResolvedEntraAuthOptions {
  instance: string;
  tenantIds: string[];
  audiences: string[];
  acceptedTokenVersions: AccessTokenVersion[];
  allowedClientIds: string[];
  requireCertificateClients: boolean;
  tokenCacheSize: number;
  ca: string | undefined;
  discoveryRetry: { initialDelayMs: number; maxDelayMs: number };
  requestTimeoutMs: number;
  logFields: (request: object) => object | undefined;
  clock: Clock;
}

/** A bad option: `option` names it (`tenantIds`, `audiences`, …), so does the message. */
export class EntraAuthOptionsError extends Error {
  override readonly name = 'EntraAuthOptionsError';
  readonly code = 'ERR_ENTRA_AUTH_OPTIONS';

  constructor(
    readonly option: string,
    problem: string,
  ) {
    super(`EntraAuthModule option ${option} ${problem}`);
  }
}

const MAX_TOKEN_CACHE_SIZE = 1_000_000;

/** Every option there is: a misspelt one must not silently leave a check off (fail closed). */
const OPTION_NAMES: ReadonlySet<string> = new Set<keyof EntraAuthOptions>([
  'instance',
  'tenantIds',
  'audiences',
  'acceptedTokenVersions',
  'allowedClientIds',
  'requireCertificateClients',
  'tokenCacheSize',
  'ca',
  'discoveryRetry',
  'requestTimeoutMs',
  'logFields',
  'clock',
]);
const RETRY_OPTION_NAMES: ReadonlySet<string> = new Set(['initialDelayMs', 'maxDelayMs']);

export function validateEntraAuthOptions(options: EntraAuthOptions): ResolvedEntraAuthOptions {
  if (typeof options !== 'object' || options === null)
    throw new EntraAuthOptionsError('options', 'must be an object');
  const fail = (option: string, problem: string, value: unknown): never => {
    throw new EntraAuthOptionsError(option, `${problem}, got ${quote(value)}`);
  };
  refuseUnknown(options, OPTION_NAMES, '');
  if (options.discoveryRetry !== undefined) {
    if (typeof options.discoveryRetry !== 'object' || options.discoveryRetry === null)
      fail('discoveryRetry', 'must be an object', options.discoveryRetry);
    refuseUnknown(options.discoveryRetry, RETRY_OPTION_NAMES, 'discoveryRetry.');
  }
  const instance = normaliseInstance(options.instance, fail);
  const { tenantIds, audiences } = options;
  if (!Array.isArray(tenantIds) || tenantIds.length === 0 || !tenantIds.every(isGuid))
    fail('tenantIds', 'must list one tenant GUID or more', tenantIds);
  if (
    !Array.isArray(audiences) ||
    audiences.length === 0 ||
    !audiences.every((a) => typeof a === 'string' && a.length > 0 && a.trim() === a)
  )
    fail('audiences', 'must list one non-empty audience or more, without surrounding spaces', audiences);
  const versions = options.acceptedTokenVersions ?? ['1.0', '2.0'];
  if (!Array.isArray(versions) || versions.length === 0 || !versions.every((v) => v === '1.0' || v === '2.0'))
    fail('acceptedTokenVersions', 'must list "1.0" and/or "2.0"', versions);
  const allowed = options.allowedClientIds ?? [];
  if (!Array.isArray(allowed) || !allowed.every(isGuid))
    fail('allowedClientIds', 'must list client app GUIDs', allowed);
  const requireCertificateClients = options.requireCertificateClients ?? false;
  if (typeof requireCertificateClients !== 'boolean')
    fail('requireCertificateClients', 'must be a boolean', requireCertificateClients);
  const tokenCacheSize = options.tokenCacheSize ?? 10_000;
  if (!isIntegerIn(tokenCacheSize, 0, MAX_TOKEN_CACHE_SIZE))
    fail('tokenCacheSize', `must be an integer from 0 to ${MAX_TOKEN_CACHE_SIZE}`, tokenCacheSize);
  if (options.ca !== undefined && !isCertificatePem(options.ca))
    fail(
      'ca',
      'must be one or more PEM certificates (-----BEGIN CERTIFICATE-----…)',
      String(options.ca).slice(0, 40),
    );
  const initialDelayMs = options.discoveryRetry?.initialDelayMs ?? 500;
  const maxDelayMs = options.discoveryRetry?.maxDelayMs ?? Math.max(30_000, Number(initialDelayMs) || 0);
  if (!isIntegerIn(initialDelayMs, 1, 3_600_000))
    fail('discoveryRetry.initialDelayMs', 'must be an integer from 1 to 3600000', initialDelayMs);
  if (!isIntegerIn(maxDelayMs, initialDelayMs, 3_600_000))
    fail('discoveryRetry.maxDelayMs', 'must be an integer from initialDelayMs to 3600000', maxDelayMs);
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  if (!isIntegerIn(requestTimeoutMs, 1, 600_000))
    fail('requestTimeoutMs', 'must be an integer from 1 to 600000', requestTimeoutMs);
  const logFields = options.logFields ?? (() => undefined);
  if (typeof logFields !== 'function') fail('logFields', 'must be a function', typeof logFields);
  const clock = options.clock === undefined ? systemClock : options.clock;
  if (typeof clock !== 'object' || clock === null || typeof clock.nowMs !== 'function')
    fail('clock', 'must be a Clock (@certflow/clock) with nowMs()', typeof clock);
  return {
    instance,
    tenantIds: unique(tenantIds.map((t) => t.toLowerCase())),
    audiences: [...audiences],
    acceptedTokenVersions: unique([...versions]),
    allowedClientIds: unique(allowed.map((c) => c.toLowerCase())),
    requireCertificateClients,
    tokenCacheSize,
    ca: options.ca,
    discoveryRetry: { initialDelayMs, maxDelayMs },
    requestTimeoutMs,
    logFields,
    clock,
  };
}

/** Where the tenant's OpenID metadata is published, for one token version. */
export function openIdMetadataUrl(instance: string, tenantId: string, version: AccessTokenVersion): string {
  const authority = `${instance}/${tenantId}`;
  return version === '2.0'
    ? `${authority}/v2.0/.well-known/openid-configuration`
    : `${authority}/.well-known/openid-configuration`;
}

function normaliseInstance(value: unknown, fail: (o: string, p: string, v: unknown) => never): string {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    return fail('instance', 'must be an https:// URL', value);
  }
  if (url.protocol !== 'https:') fail('instance', 'must use https://', value);
  if (url.search || url.hash || url.username || url.password)
    fail('instance', 'must be a base URL without query, fragment or credentials', value);
  // The tenant and the version are added here: an instance that already names them would be
  // asked for `…/{tid}/{tid}/v2.0/…`, and the 404 would wrongly read as "no such tenant".
  const segments = url.pathname.split('/').filter(Boolean);
  if (segments.some((s) => AUTHORITY_PATH_SEGMENTS.has(s.toLowerCase()) || isGuid(s)))
    fail(
      'instance',
      'must be the base URL without a tenant, version or endpoint path (e.g. https://login.microsoftonline.com)',
      value,
    );
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

const AUTHORITY_PATH_SEGMENTS = new Set([
  'v2.0',
  'oauth2',
  '.well-known',
  'discovery',
  'common',
  'organizations',
  'consumers',
]);

function refuseUnknown(given: object, known: ReadonlySet<string>, prefix: string): void {
  for (const key of Object.keys(given)) {
    if (known.has(key)) continue;
    const near = [...known].find((k) => closeTo(k, key));
    throw new EntraAuthOptionsError(
      `${prefix}${key}`,
      `is not an option${near ? ` (did you mean ${prefix}${near}?)` : ''}; known: ${[...known].join(', ')}`,
    );
  }
}

/** Same letters ignoring case, or at most two edits apart. */
function closeTo(a: string, b: string): boolean {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  if (x === y) return true;
  if (Math.abs(x.length - y.length) > 2) return false;
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const row = [i];
    for (let j = 1; j <= y.length; j++)
      row[j] = Math.min(
        previous[j]! + 1,
        row[j - 1]! + 1,
        previous[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1),
      );
    previous = row;
  }
  return previous[y.length]! <= 2;
}

/** Whether `value` is PEM text of one or more X.509 certificates, each of which parses. */
export function isCertificatePem(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  const blocks = value.match(/-----BEGIN [^-]+-----[\s\S]*?-----END [^-]+-----/g) ?? [];
  if (blocks.length === 0) return false;
  return blocks.every((block) => {
    if (!block.startsWith('-----BEGIN CERTIFICATE-----')) return false;
    try {
      new X509Certificate(block);
      return true;
    } catch {
      return false;
    }
  });
}

function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

function unique<T>(values: T[]): T[] {
  return [...new Set(values)];
}

function quote(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}
