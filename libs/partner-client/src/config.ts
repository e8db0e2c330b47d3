/**
 * The partner worker's configuration, read from environment variables (docs/architecture.md).
 * Each command asks only for what it uses: `cert …` needs the certificate directory, `token get`
 * adds the authority, `call` adds the API. A bad value is an error naming the variable.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parseCertificate } from '@certflow/certs';
import { isGuid } from '@certflow/claims';
import { parsePkcs11Uri } from '@certflow/pkcs11';
import type { StoreReadOptions } from './certificate-store';
import { ConfigError, envUrl as url, envValue as value, type Env } from './env';
import { parseCacheKey } from './shared-token-cache';
import { TOKEN_STORES, tokenStoreBackend } from './token-stores';

export { ConfigError, type Env } from './env';

export const DEFAULT_ENTRA_INSTANCE = 'https://login.microsoftonline.com';
export const DEFAULT_CERT_DIR = '.certflow/partner';

export interface CertificateDirectoryConfig {
  /** Absolute path of the directory holding partner.key.pem, partner.crt.pem and partner.cer. */
  certDir: string;
  /** PARTNER_KEY_PASSPHRASE: the private key is (to be) stored encrypted with it. */
  keyPassphrase?: string;
  /** PARTNER_CERT_EXPIRY_WARNING_DAYS (default 30): warn when fewer days are left. */
  expiryWarningDays: number;
  /**
   * PARTNER_KEY_STORE: where `cert create` and `cert csr` make a new key, a PKCS#11 URI
   * (RFC 7512, e.g. `pkcs11:token=partner;object=partner-2026`); unset: a key file.
   */
  keyStore?: string;
  /**
   * What opens a key in a token: PARTNER_KEY_STORE (its module-path and pin-source),
   * PARTNER_PKCS11_MODULE and PARTNER_PKCS11_PIN. Key references in the certificate directory
   * never name a module or a PIN source.
   */
  pkcs11Env: Readonly<Record<string, string | undefined>>;
}

/** What CertificateStore.read and load need from the configuration to open the key. */
export function storeReadOptions(config: CertificateDirectoryConfig): StoreReadOptions {
  return {
    ...(config.keyPassphrase !== undefined ? { passphrase: config.keyPassphrase } : {}),
    env: config.pkcs11Env,
  };
}

export const DEFAULT_EXPIRY_WARNING_DAYS = 30;

export interface TrustConfig {
  /** Extra CA certificates (PEM) trusted for the authority and the API, from PARTNER_CA_FILE. */
  caFile?: string;
  caPem?: string;
}

export interface SharedCacheConfig {
  /**
   * PARTNER_TOKEN_STORE: a backend of TOKEN_STORES (`redis`, `memory`); `redis` when unset and
   * PARTNER_REDIS_URL is set.
   */
  store: string;
  /** What the backend read from the environment (Redis: `url`, from PARTNER_REDIS_URL). */
  settings: Readonly<Record<string, string>>;
  /**
   * PARTNER_CACHE_KEY decoded: 32 bytes, the AES-256-GCM key of the stored tokens. Required for a
   * store outside the process; otherwise random when not given.
   */
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

function required(env: Env, name: string, example: string): string {
  const v = value(env, name);
  if (v === undefined) throw new ConfigError(name, `is required (e.g. ${example})`);
  return v;
}

function guid(env: Env, name: string): string {
  const v = required(env, name, '00000000-0000-0000-0000-000000000000');
  if (!isGuid(v)) throw new ConfigError(name, `must be a GUID, got "${v}"`);
  return v.toLowerCase();
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
  const keyStore = value(env, 'PARTNER_KEY_STORE');
  if (keyStore !== undefined) {
    try {
      parsePkcs11Uri(keyStore);
    } catch (err) {
      throw new ConfigError('PARTNER_KEY_STORE', (err as Error).message);
    }
  }
  const module = value(env, 'PARTNER_PKCS11_MODULE');
  if (module !== undefined && !isAbsolute(module))
    throw new ConfigError(
      'PARTNER_PKCS11_MODULE',
      `must be an absolute path to the PKCS#11 module, got "${module}"`,
    );
  // Not trimmed: a PIN may contain any character.
  const pin = env['PARTNER_PKCS11_PIN'] || undefined;
  return {
    certDir: isAbsolute(dir) ? dir : resolve(cwd, dir),
    ...(keyPassphrase !== undefined ? { keyPassphrase } : {}),
    expiryWarningDays,
    ...(keyStore !== undefined ? { keyStore } : {}),
    pkcs11Env: {
      ...(keyStore !== undefined ? { PARTNER_KEY_STORE: keyStore } : {}),
      ...(module !== undefined ? { PARTNER_PKCS11_MODULE: module } : {}),
      ...(pin !== undefined ? { PARTNER_PKCS11_PIN: pin } : {}),
    },
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
  const sharedCache = readSharedCacheConfig(env);
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

/** PARTNER_TOKEN_STORE (or PARTNER_REDIS_URL alone) and PARTNER_CACHE_KEY; undefined: no shared tier. */
export function readSharedCacheConfig(env: Env): SharedCacheConfig | undefined {
  const named = value(env, 'PARTNER_TOKEN_STORE');
  const store = named ?? (value(env, 'PARTNER_REDIS_URL') ? 'redis' : undefined);
  if (store === undefined) return undefined;
  const backend = tokenStoreBackend(store);
  for (const [other, { variables }] of Object.entries(TOKEN_STORES)) {
    const stray = variables.find((v) => !backend.variables.includes(v) && value(env, v) !== undefined);
    if (stray)
      throw new ConfigError(
        'PARTNER_TOKEN_STORE',
        `is "${store}" but ${stray} (a setting of the ${other} store) is set too: unset ${stray}, or set PARTNER_TOKEN_STORE=${other}`,
      );
  }
  const settings = backend.configure(env);
  const rawKey = value(env, 'PARTNER_CACHE_KEY');
  if (rawKey === undefined && backend.remote)
    throw new ConfigError(
      'PARTNER_CACHE_KEY',
      `is required with ${named ? `PARTNER_TOKEN_STORE=${store}` : 'PARTNER_REDIS_URL'} (tokens are stored encrypted)`,
    );
  let cacheKey: Buffer;
  try {
    cacheKey = rawKey === undefined ? randomBytes(32) : parseCacheKey(rawKey);
  } catch (err) {
    throw new ConfigError('PARTNER_CACHE_KEY', (err as Error).message);
  }
  return { store, settings, cacheKey };
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
