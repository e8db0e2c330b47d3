/**
 * The API's configuration: read from the environment once, validated at start-up, and a bad
 * value stops start-up with a {@link ConfigError} that names the variable.
 *
 * @example
 *   const config = loadApiConfig(process.env); // throws ConfigError('ENTRA_TENANT_ID', 'is required')
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { isGuid } from '@certflow/claims';
import { ConfigError } from './config-error';

export interface ApiConfig {
  /** `HOST`: listen address. */
  host: string;
  /** `PORT`: listen port, 0 for any free port. */
  port: number;
  /** `ENTRA_INSTANCE`: Entra ID (or emulator) base URL, without a trailing slash. */
  entraInstance: string;
  /** `ENTRA_TENANT_ID`: the tenant GUID whose tokens are accepted. */
  tenantId: string;
  /** `API_AUDIENCES`: accepted `aud` values (app id, App ID URI). */
  audiences: string[];
  /** `ENTRA_CA_FILE`: extra CA (PEM) trusted, besides the system roots, when fetching signing keys. */
  caFile?: string;
}

/** Environment variable ↔ option, so that programmatic callers get the same messages. */
const VARIABLE: Record<keyof ApiConfig, string> = {
  host: 'HOST',
  port: 'PORT',
  entraInstance: 'ENTRA_INSTANCE',
  tenantId: 'ENTRA_TENANT_ID',
  audiences: 'API_AUDIENCES',
  caFile: 'ENTRA_CA_FILE',
};

export const API_CONFIG_DEFAULTS = {
  host: '127.0.0.1',
  port: 3000,
  entraInstance: 'https://login.microsoftonline.com',
} as const;

/** Reads and validates the configuration from environment variables. */
export function loadApiConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  const value = (option: keyof ApiConfig): string | undefined => {
    const raw = env[VARIABLE[option]]?.trim();
    return raw === '' ? undefined : raw;
  };
  const port = value('port');
  if (port !== undefined && !/^\d+$/.test(port)) throw new ConfigError('PORT', `must be an integer from 0 to 65535, got ${quote(port)}`);
  const tenantId = value('tenantId');
  if (tenantId === undefined) throw new ConfigError('ENTRA_TENANT_ID', 'is required (the tenant GUID)');
  const audiences = value('audiences');
  if (audiences === undefined) throw new ConfigError('API_AUDIENCES', 'is required (comma-separated accepted aud values)');
  const caFile = value('caFile');
  return validateApiConfig({
    host: value('host') ?? API_CONFIG_DEFAULTS.host,
    port: port === undefined ? API_CONFIG_DEFAULTS.port : Number(port),
    entraInstance: value('entraInstance') ?? API_CONFIG_DEFAULTS.entraInstance,
    tenantId,
    audiences: audiences.split(',').map((a) => a.trim()),
    ...(caFile === undefined ? {} : { caFile }),
  });
}

/** Checks a configuration (from the environment or built in code) and returns it normalised. */
export function validateApiConfig(config: ApiConfig): ApiConfig {
  const { host, port, entraInstance, tenantId, audiences, caFile } = config;
  if (typeof host !== 'string' || host.length === 0 || /\s/.test(host)) {
    throw new ConfigError(VARIABLE.host, `must be a host name or IP address, got ${quote(host)}`);
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(VARIABLE.port, `must be an integer from 0 to 65535, got ${quote(port)}`);
  }
  if (!isGuid(tenantId)) throw new ConfigError(VARIABLE.tenantId, `must be a tenant GUID, got ${quote(tenantId)}`);
  if (!Array.isArray(audiences) || audiences.length === 0 || audiences.some((a) => typeof a !== 'string' || a.length === 0)) {
    throw new ConfigError(VARIABLE.audiences, `must be a comma-separated list of non-empty values, got ${quote(audiences)}`);
  }
  if (caFile !== undefined) assertReadableCaFile(caFile);
  return {
    host,
    port,
    entraInstance: normaliseInstance(entraInstance),
    tenantId: tenantId.toLowerCase(),
    audiences: [...audiences],
    ...(caFile === undefined ? {} : { caFile }),
  };
}

/** The issuers Entra ID uses for the tenant: v2 tokens `{instance}/{tid}/v2.0`, v1 tokens `https://sts.windows.net/{tid}/`. */
export function entraIssuers(config: ApiConfig): string[] {
  return [`${config.entraInstance}/${config.tenantId}/v2.0`, `https://sts.windows.net/${config.tenantId}/`];
}

/** Where the tenant publishes its token-signing keys. */
export function entraJwksUri(config: ApiConfig): string {
  return `${config.entraInstance}/${config.tenantId}/discovery/v2.0/keys`;
}

/** The PEM of the extra CA, read when the app is created. */
export function readCaFile(config: ApiConfig): string | undefined {
  return config.caFile === undefined ? undefined : readFileSync(config.caFile, 'utf8');
}

function normaliseInstance(value: unknown): string {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    throw new ConfigError(VARIABLE.entraInstance, `must be an https:// URL, got ${quote(value)}`);
  }
  if (url.protocol !== 'https:') throw new ConfigError(VARIABLE.entraInstance, `must use https:// (Entra ID and the emulator are HTTPS only), got ${quote(value)}`);
  if (url.search || url.hash || url.username || url.password) {
    throw new ConfigError(VARIABLE.entraInstance, `must be a base URL without query, fragment or credentials, got ${quote(value)}`);
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

function assertReadableCaFile(path: string): void {
  try {
    accessSync(path, constants.R_OK);
  } catch {
    throw new ConfigError(VARIABLE.caFile, `must name a readable PEM file, got ${quote(path)} (not found or not readable)`);
  }
  if (!readFileSync(path, 'utf8').includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError(VARIABLE.caFile, `must contain a PEM certificate, ${quote(path)} does not`);
  }
}

function quote(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}
