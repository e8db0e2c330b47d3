/**
 * The partner worker's configuration, read from environment variables (docs/architecture.md).
 * Each command asks only for what it uses: `cert …` needs the certificate directory, `token get`
 * adds the authority, `call` adds the API. A bad value is an error naming the variable.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parseCertificate } from '@certflow/certs';
import { parseCacheKey } from './shared-token-cache';

export const DEFAULT_ENTRA_INSTANCE = 'https://login.microsoftonline.com';
export const DEFAULT_CERT_DIR = '.certflow/partner';

export type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    /** The environment variable at fault. */
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
  }
}

export interface CertificateDirectoryConfig {
  /** Absolute path of the directory holding partner.key.pem, partner.crt.pem and partner.cer. */
  certDir: string;
  /** PARTNER_KEY_PASSPHRASE: the private key is (to be) stored encrypted with it. */
  keyPassphrase?: string;
  /** PARTNER_CERT_EXPIRY_WARNING_DAYS (default 30): warn when fewer days are left. */
  expiryWarningDays: number;
}

export const DEFAULT_EXPIRY_WARNING_DAYS = 30;

export interface TrustConfig {
  /** Extra CA certificates (PEM) trusted for the authority and the API, from PARTNER_CA_FILE. */
  caFile?: string;
  caPem?: string;
}

export interface SharedCacheConfig {
  /** PARTNER_REDIS_URL: replicas share their tokens through this Redis. */
  redisUrl: string;
  /** PARTNER_CACHE_KEY decoded: 32 bytes, AES-256-GCM key for the tokens in Redis. */
  cacheKey: Buffer;
}

export interface TokenConfig extends CertificateDirectoryConfig, TrustConfig {
  sharedCache?: SharedCacheConfig;
  /** `https://host[:port]` without a trailing slash. */
  entraInstance: string;
  tenantId: string;
  clientId: string;
  scope: string;
}

export interface PartnerConfig extends TokenConfig {
  /** Base URL of the API (through the gateway), without a trailing slash. */
  apiBaseUrl: string;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An unset or empty variable counts as missing. */
function value(env: Env, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined) return undefined;
  const trimmed = raw.trim();
  return trimmed === '' ? undefined : trimmed;
}

function required(env: Env, name: string, example: string): string {
  const v = value(env, name);
  if (v === undefined) throw new ConfigError(name, `is required (e.g. ${example})`);
  return v;
}

function guid(env: Env, name: string): string {
  const v = required(env, name, '00000000-0000-0000-0000-000000000000');
  if (!GUID.test(v)) throw new ConfigError(name, `must be a GUID, got "${v}"`);
  return v.toLowerCase();
}

function url(name: string, v: string, protocols: string[]): URL {
  let parsed: URL;
  try {
    parsed = new URL(v);
  } catch {
    throw new ConfigError(name, `must be an absolute URL, got "${v}"`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(
      name,
      `must use ${protocols.map((p) => p.replace(':', '')).join(' or ')}, got "${v}"`,
    );
  }
  if (parsed.search || parsed.hash)
    throw new ConfigError(name, `must not have a query or fragment, got "${v}"`);
  if (parsed.username || parsed.password) throw new ConfigError(name, 'must not contain credentials');
  return parsed;
}

function withoutTrailingSlash(u: URL): string {
  return u.href.replace(/\/+$/, '');
}

export function readCertificateDirectoryConfig(env: Env, cwd = process.cwd()): CertificateDirectoryConfig {
  const dir = value(env, 'PARTNER_CERT_DIR') ?? DEFAULT_CERT_DIR;
  // Not trimmed: a passphrase may contain any character.
  const keyPassphrase = env['PARTNER_KEY_PASSPHRASE'] || undefined;
  if (keyPassphrase !== undefined && keyPassphrase.length < 8)
    throw new ConfigError('PARTNER_KEY_PASSPHRASE', 'must have at least 8 characters');
  const rawDays = value(env, 'PARTNER_CERT_EXPIRY_WARNING_DAYS');
  let expiryWarningDays = DEFAULT_EXPIRY_WARNING_DAYS;
  if (rawDays !== undefined) {
    if (!/^\d+$/.test(rawDays) || Number(rawDays) > 3650)
      throw new ConfigError(
        'PARTNER_CERT_EXPIRY_WARNING_DAYS',
        `must be a whole number from 0 to 3650, got "${rawDays}"`,
      );
    expiryWarningDays = Number(rawDays);
  }
  return {
    certDir: isAbsolute(dir) ? dir : resolve(cwd, dir),
    ...(keyPassphrase !== undefined ? { keyPassphrase } : {}),
    expiryWarningDays,
  };
}

export function readTrustConfig(env: Env, cwd = process.cwd()): TrustConfig {
  const file = value(env, 'PARTNER_CA_FILE');
  if (file === undefined) return {};
  const caFile = isAbsolute(file) ? file : resolve(cwd, file);
  let caPem: string;
  try {
    caPem = readFileSync(caFile, 'utf8');
  } catch (err) {
    throw new ConfigError(
      'PARTNER_CA_FILE',
      `cannot read ${caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  if (!caPem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError(
      'PARTNER_CA_FILE',
      `${caFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    );
  }
  try {
    parseCertificate(caPem);
  } catch (err) {
    throw new ConfigError(
      'PARTNER_CA_FILE',
      `${caFile} is not a valid certificate: ${(err as Error).message}`,
    );
  }
  return { caFile, caPem };
}

export function readTokenConfig(env: Env, cwd = process.cwd()): TokenConfig {
  const instance = url('ENTRA_INSTANCE', value(env, 'ENTRA_INSTANCE') ?? DEFAULT_ENTRA_INSTANCE, ['https:']);
  if (instance.pathname !== '/') {
    throw new ConfigError(
      'ENTRA_INSTANCE',
      `must be the instance only, without the tenant or a path (e.g. ${DEFAULT_ENTRA_INSTANCE}), got "${instance.href}"`,
    );
  }
  const tenantId = guid(env, 'PARTNER_TENANT_ID');
  const clientId = guid(env, 'PARTNER_CLIENT_ID');
  const scope = required(env, 'PARTNER_SCOPE', 'api://certflow-orders/.default');
  if (/\s/.test(scope)) throw new ConfigError('PARTNER_SCOPE', `must be a single scope, got "${scope}"`);
  if (!scope.endsWith('/.default') || scope === '/.default') {
    throw new ConfigError(
      'PARTNER_SCOPE',
      `must be the resource followed by /.default for client credentials, got "${scope}"`,
    );
  }
  const redisUrl = value(env, 'PARTNER_REDIS_URL');
  let sharedCache: SharedCacheConfig | undefined;
  if (redisUrl !== undefined) {
    const parsed = url('PARTNER_REDIS_URL', redisUrl, ['redis:', 'rediss:']);
    const rawKey = value(env, 'PARTNER_CACHE_KEY');
    if (rawKey === undefined)
      throw new ConfigError(
        'PARTNER_CACHE_KEY',
        'is required with PARTNER_REDIS_URL (tokens are stored encrypted)',
      );
    let cacheKey: Buffer;
    try {
      cacheKey = parseCacheKey(rawKey);
    } catch (err) {
      throw new ConfigError('PARTNER_CACHE_KEY', (err as Error).message);
    }
    sharedCache = { redisUrl: parsed.href, cacheKey };
  }
  return {
    ...(sharedCache ? { sharedCache } : {}),
    entraInstance: withoutTrailingSlash(instance),
    tenantId,
    clientId,
    scope,
    ...readCertificateDirectoryConfig(env, cwd),
    ...readTrustConfig(env, cwd),
  };
}

export function readPartnerConfig(env: Env, cwd = process.cwd()): PartnerConfig {
  const tokenConfig = readTokenConfig(env, cwd);
  const api = url('PARTNER_API_BASE_URL', required(env, 'PARTNER_API_BASE_URL', 'https://127.0.0.1:8443'), [
    'https:',
    'http:',
  ]);
  return { ...tokenConfig, apiBaseUrl: withoutTrailingSlash(api) };
}

export const DEFAULT_GRAPH_URL = 'https://graph.microsoft.com/v1.0';

export interface RotationConfig extends TokenConfig {
  /** PARTNER_APP_OBJECT_ID: the partner application's object id (not its client id). */
  applicationObjectId: string;
  /** PARTNER_GRAPH_URL (default https://graph.microsoft.com/v1.0). */
  graphUrl: string;
  /** The scope for the partner's own Graph token: `<graph origin>/.default`. */
  graphScope: string;
}

export function readRotationConfig(env: Env, cwd = process.cwd()): RotationConfig {
  const tokenConfig = readTokenConfig(env, cwd);
  const applicationObjectId = guid(env, 'PARTNER_APP_OBJECT_ID');
  const graph = url('PARTNER_GRAPH_URL', value(env, 'PARTNER_GRAPH_URL') ?? DEFAULT_GRAPH_URL, ['https:']);
  return {
    ...tokenConfig,
    applicationObjectId,
    graphUrl: withoutTrailingSlash(graph),
    // Real Graph tokens are for https://graph.microsoft.com; the emulator's Graph accepts the same.
    graphScope: 'https://graph.microsoft.com/.default',
  };
}
