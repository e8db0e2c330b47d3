/**
 * The API's configuration: read from the environment once, validated at start-up, and a bad
 * value stops start-up with a {@link ConfigError} that names the variable.
 *
 * @example
 *   const config = loadApiConfig(process.env); // throws ConfigError('ENTRA_TENANT_ID', 'is required')
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { isGuid, type AccessTokenVersion } from '@certflow/claims';
import {
  CLOCK_FILE_ENV,
  CLOCK_OFFSET_ENV,
  ClockError,
  clockFromEnvironment,
  systemClock,
  type Clock,
  type EnvironmentClock,
} from '@certflow/clock';
import { AllowedHostsError, parseAllowedHosts } from '@certflow/loopback-guard';
import { isCertificatePem, type EntraAuthOptions } from '@certflow/nest-entra-auth';
import { ConfigError } from './config-error';

export interface ApiConfig {
  /** `HOST`: listen address. */
  host: string;
  /** `PORT`: listen port, 0 for any free port. */
  port: number;
  /** `ENTRA_INSTANCE`: Entra ID (or emulator) base URL, without a trailing slash. */
  entraInstance: string;
  /** `ENTRA_TENANT_ID`: the tenant GUIDs whose tokens are accepted (comma-separated), lower case. */
  tenantIds: string[];
  /** `API_AUDIENCES`: accepted `aud` values (app id, App ID URI). */
  audiences: string[];
  /** `ENTRA_CA_FILE`: extra CA (PEM) trusted, besides the system roots, when fetching signing keys. */
  caFile?: string;
  /** `API_ALLOWED_CLIENT_IDS`: partner client app ids allowed to call (lower case); empty = any client of the tenants. */
  allowedClientIds: string[];
  /** `API_REQUIRE_CERTIFICATE_CLIENTS`: only tokens whose client authenticated with a certificate (`azpacr`/`appidacr` = "2"). */
  requireCertificateClients: boolean;
  /** `API_ACCEPTED_TOKEN_VERSIONS`: access-token versions accepted (`1.0`, `2.0`). */
  acceptedTokenVersions: AccessTokenVersion[];
  /** `API_TOKEN_CACHE_SIZE`: verified tokens remembered (LRU) so that a repeated token skips the RSA check; 0 disables it. */
  tokenCacheSize: number;
  /** `API_ALLOWED_HOSTS`: Host names answered besides localhost, 127.0.0.1 and [::1] (comma-separated, lower case). */
  allowedHosts: string[];
  /**
   * `CERTFLOW_CLOCK_OFFSET` / `CERTFLOW_CLOCK_FILE` (@certflow/clock): the time tokens' `exp` and
   * `nbf` are judged by, for tests on a shifted clock; refused when `NODE_ENV=production`.
   * Default: the real time.
   */
  clock: Clock;
}

/** Environment variable ↔ option, so that programmatic callers get the same messages. */
const VARIABLE: Record<keyof ApiConfig, string> = {
  host: 'HOST',
  port: 'PORT',
  entraInstance: 'ENTRA_INSTANCE',
  tenantIds: 'ENTRA_TENANT_ID',
  audiences: 'API_AUDIENCES',
  caFile: 'ENTRA_CA_FILE',
  allowedClientIds: 'API_ALLOWED_CLIENT_IDS',
  requireCertificateClients: 'API_REQUIRE_CERTIFICATE_CLIENTS',
  acceptedTokenVersions: 'API_ACCEPTED_TOKEN_VERSIONS',
  tokenCacheSize: 'API_TOKEN_CACHE_SIZE',
  allowedHosts: 'API_ALLOWED_HOSTS',
  clock: `${CLOCK_OFFSET_ENV} / ${CLOCK_FILE_ENV}`,
};

export const API_CONFIG_DEFAULTS = {
  host: '127.0.0.1',
  port: 3000,
  entraInstance: 'https://login.microsoftonline.com',
  allowedClientIds: [] as readonly string[],
  requireCertificateClients: false,
  acceptedTokenVersions: ['1.0', '2.0'] as readonly AccessTokenVersion[],
  tokenCacheSize: 10_000,
  allowedHosts: [] as readonly string[],
} as const;

type AuthorizationOption =
  | 'allowedClientIds'
  | 'requireCertificateClients'
  | 'acceptedTokenVersions'
  | 'tokenCacheSize'
  | 'allowedHosts'
  | 'clock';

/** A configuration built in code: the authorization options may be left out (their defaults apply). */
export type ApiConfigInput = Omit<ApiConfig, AuthorizationOption> &
  Partial<Pick<ApiConfig, AuthorizationOption>>;

const MAX_TOKEN_CACHE_SIZE = 1_000_000;

/**
 * Reads and validates the configuration from environment variables. The clock follows
 * CERTFLOW_CLOCK_FILE while the API runs: `close()` it when the API stops; a file damaged
 * meanwhile keeps the clock where it was and is reported to `onClockError`.
 */
export function loadApiConfig(
  env: NodeJS.ProcessEnv = process.env,
  opts: { onClockError?(err: ClockError): void } = {},
): ApiConfig & { clock: EnvironmentClock } {
  const value = (option: keyof ApiConfig): string | undefined => {
    const raw = env[VARIABLE[option]]?.trim();
    return raw === '' ? undefined : raw;
  };
  const port = value('port');
  if (port !== undefined && !/^\d+$/.test(port))
    throw new ConfigError('PORT', `must be an integer from 0 to 65535, got ${quote(port)}`);
  const tenantIds = value('tenantIds');
  if (tenantIds === undefined)
    throw new ConfigError('ENTRA_TENANT_ID', 'is required (the tenant GUID, or several separated by commas)');
  const audiences = value('audiences');
  if (audiences === undefined)
    throw new ConfigError('API_AUDIENCES', 'is required (comma-separated accepted aud values)');
  const caFile = value('caFile');
  const allowed = value('allowedClientIds');
  const versions = value('acceptedTokenVersions');
  const cacheSize = value('tokenCacheSize');
  const hosts = value('allowedHosts');
  if (cacheSize !== undefined && !/^\d+$/.test(cacheSize)) {
    throw new ConfigError(
      VARIABLE.tokenCacheSize,
      `must be an integer from 0 to ${MAX_TOKEN_CACHE_SIZE}, got ${quote(cacheSize)}`,
    );
  }
  const config = validateApiConfig({
    host: value('host') ?? API_CONFIG_DEFAULTS.host,
    port: port === undefined ? API_CONFIG_DEFAULTS.port : Number(port),
    entraInstance: value('entraInstance') ?? API_CONFIG_DEFAULTS.entraInstance,
    tenantIds: list(tenantIds),
    audiences: list(audiences),
    ...(caFile === undefined ? {} : { caFile }),
    allowedClientIds: allowed === undefined ? [] : list(allowed),
    requireCertificateClients: parseBoolean(
      VARIABLE.requireCertificateClients,
      value('requireCertificateClients'),
    ),
    acceptedTokenVersions:
      versions === undefined ? [...API_CONFIG_DEFAULTS.acceptedTokenVersions] : parseVersions(versions),
    tokenCacheSize: cacheSize === undefined ? API_CONFIG_DEFAULTS.tokenCacheSize : Number(cacheSize),
    allowedHosts: hosts === undefined ? [] : list(hosts),
  });
  return { ...config, clock: environmentClock(env, opts.onClockError) };
}

/** A production API judges tokens by the real time: a shifted clock there is refused, naming the variable. */
function environmentClock(env: NodeJS.ProcessEnv, onError?: (err: ClockError) => void): EnvironmentClock {
  if (env['NODE_ENV']?.trim().toLowerCase() === 'production') {
    for (const variable of [CLOCK_OFFSET_ENV, CLOCK_FILE_ENV]) {
      if (env[variable])
        throw new ConfigError(
          variable,
          'must not be set when NODE_ENV=production: a production API judges tokens by the real time',
        );
    }
  }
  try {
    return clockFromEnvironment(env, onError ? { onError } : {});
  } catch (err) {
    if (!(err instanceof ClockError)) throw err;
    const variable = err.code === 'ERR_CLOCK_OFFSET' ? CLOCK_OFFSET_ENV : CLOCK_FILE_ENV;
    throw new ConfigError(variable, err.message.replace(`${variable} `, '')); // it names the variable
  }
}

/** Checks a configuration (from the environment or built in code), fills in defaults and returns it normalised. */
export function validateApiConfig(config: ApiConfigInput): ApiConfig {
  const { host, port, entraInstance, tenantIds, audiences, caFile } = config;
  const {
    allowedClientIds = API_CONFIG_DEFAULTS.allowedClientIds,
    requireCertificateClients = API_CONFIG_DEFAULTS.requireCertificateClients,
    acceptedTokenVersions = API_CONFIG_DEFAULTS.acceptedTokenVersions,
    tokenCacheSize = API_CONFIG_DEFAULTS.tokenCacheSize,
    allowedHosts = API_CONFIG_DEFAULTS.allowedHosts,
    clock = systemClock,
  } = config;
  if (typeof host !== 'string' || host.length === 0 || /\s/.test(host)) {
    throw new ConfigError(VARIABLE.host, `must be a host name or IP address, got ${quote(host)}`);
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(VARIABLE.port, `must be an integer from 0 to 65535, got ${quote(port)}`);
  }
  if (!Array.isArray(tenantIds) || tenantIds.length === 0 || !tenantIds.every(isGuid)) {
    throw new ConfigError(
      VARIABLE.tenantIds,
      `must be a tenant GUID, or several separated by commas, got ${quote(tenantIds)}`,
    );
  }
  if (
    !Array.isArray(audiences) ||
    audiences.length === 0 ||
    audiences.some((a) => typeof a !== 'string' || a.length === 0)
  ) {
    throw new ConfigError(
      VARIABLE.audiences,
      `must be a comma-separated list of non-empty values, got ${quote(audiences)}`,
    );
  }
  if (caFile !== undefined) assertReadableCaFile(caFile);
  if (!Array.isArray(allowedClientIds) || !allowedClientIds.every(isGuid)) {
    throw new ConfigError(
      VARIABLE.allowedClientIds,
      `must be a comma-separated list of client app id GUIDs (or empty for any), got ${quote(allowedClientIds)}`,
    );
  }
  if (typeof requireCertificateClients !== 'boolean') {
    throw new ConfigError(
      VARIABLE.requireCertificateClients,
      `must be true or false, got ${quote(requireCertificateClients)}`,
    );
  }
  if (
    !Array.isArray(acceptedTokenVersions) ||
    acceptedTokenVersions.length === 0 ||
    !acceptedTokenVersions.every((v) => v === '1.0' || v === '2.0')
  ) {
    throw new ConfigError(
      VARIABLE.acceptedTokenVersions,
      `must list 1.0 and/or 2.0, got ${quote(acceptedTokenVersions)}`,
    );
  }
  if (!Number.isInteger(tokenCacheSize) || tokenCacheSize < 0 || tokenCacheSize > MAX_TOKEN_CACHE_SIZE) {
    throw new ConfigError(
      VARIABLE.tokenCacheSize,
      `must be an integer from 0 to ${MAX_TOKEN_CACHE_SIZE}, got ${quote(tokenCacheSize)}`,
    );
  }
  if (typeof clock !== 'object' || clock === null || typeof clock.nowMs !== 'function')
    throw new ConfigError(VARIABLE.clock, `must be a Clock (@certflow/clock), got ${quote(typeof clock)}`);
  let hosts: string[];
  try {
    hosts = parseAllowedHosts(Array.isArray(allowedHosts) ? allowedHosts : [String(allowedHosts)]);
  } catch (err) {
    if (!(err instanceof AllowedHostsError)) throw err;
    throw new ConfigError(VARIABLE.allowedHosts, `${err.message}, got ${quote(allowedHosts)}`);
  }
  return {
    host,
    port,
    entraInstance: normaliseInstance(entraInstance),
    tenantIds: unique(tenantIds.map((t) => t.toLowerCase())),
    audiences: [...audiences],
    ...(caFile === undefined ? {} : { caFile }),
    allowedClientIds: unique(allowedClientIds.map((c) => c.toLowerCase())),
    requireCertificateClients,
    acceptedTokenVersions: unique([...acceptedTokenVersions]),
    tokenCacheSize,
    allowedHosts: hosts,
    clock,
  };
}

/** The options of `EntraAuthModule` this configuration stands for (the CA file is read now). */
export function entraAuthOptions(config: ApiConfig): EntraAuthOptions {
  return {
    instance: config.entraInstance,
    tenantIds: config.tenantIds,
    audiences: config.audiences,
    acceptedTokenVersions: config.acceptedTokenVersions,
    allowedClientIds: config.allowedClientIds,
    requireCertificateClients: config.requireCertificateClients,
    tokenCacheSize: config.tokenCacheSize,
    ca: readCaFile(config),
    clock: config.clock,
  };
}

/** The PEM of the extra CA, read when the app is created. */
export function readCaFile(config: ApiConfig): string | undefined {
  return config.caFile === undefined ? undefined : readFileSync(config.caFile, 'utf8');
}

function list(value: string): string[] {
  return value.split(',').map((a) => a.trim());
}

function unique<T>(values: T[]): T[] {
  return [...new Set(values)];
}

function parseBoolean(variable: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (/^(true|1|yes)$/i.test(value)) return true;
  if (/^(false|0|no)$/i.test(value)) return false;
  throw new ConfigError(variable, `must be true or false, got ${quote(value)}`);
}

function parseVersions(value: string): AccessTokenVersion[] {
  return list(value).map((v) => {
    if (v === '1' || v === '1.0') return '1.0';
    if (v === '2' || v === '2.0') return '2.0';
    throw new ConfigError(
      VARIABLE.acceptedTokenVersions,
      `must list 1.0 and/or 2.0 (comma-separated), got ${quote(value)}`,
    );
  });
}

function normaliseInstance(value: unknown): string {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    throw new ConfigError(VARIABLE.entraInstance, `must be an https:// URL, got ${quote(value)}`);
  }
  if (url.protocol !== 'https:')
    throw new ConfigError(
      VARIABLE.entraInstance,
      `must use https:// (Entra ID and the emulator are HTTPS only), got ${quote(value)}`,
    );
  if (url.search || url.hash || url.username || url.password) {
    throw new ConfigError(
      VARIABLE.entraInstance,
      `must be a base URL without query, fragment or credentials, got ${quote(value)}`,
    );
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

function assertReadableCaFile(path: string): void {
  try {
    accessSync(path, constants.R_OK);
  } catch {
    throw new ConfigError(
      VARIABLE.caFile,
      `must name a readable PEM file, got ${quote(path)} (not found or not readable)`,
    );
  }
  // The same check EntraAuthModule makes, so that a bad file is named here by its variable.
  if (!isCertificatePem(readFileSync(path, 'utf8'))) {
    throw new ConfigError(
      VARIABLE.caFile,
      `must contain PEM certificates only, each one valid; ${quote(path)} does not`,
    );
  }
}

function quote(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}
