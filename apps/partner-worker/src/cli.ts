/**
 * The partner worker's command line. `runCli` does all the work and returns the exit code,
 * so that tests run it in-process; main.ts only wires it to the real process.
 *
 * With --json, stdout carries one JSON object per line (docs/architecture.md):
 *   {"event":"assertion","header":{…},"claims":{…}}   each client assertion sent (no signature)
 *   {"event":"token","source":"network"|"cache","claims":{…},"expiresOn":"…"}
 *   {"event":"response","status":200,"body":…}
 * and `cert create|show --json` print one {"event":"certificate",…} object.
 * Errors go to stderr. Exit codes: 0 success, 1 failure, 2 usage error.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';
import { exportPkcs12, keyCredentialFor, writeFileAtomic } from '@certflow/certs';
import { decodeJwt } from 'jose';
import { ApiClient } from './api-client';
import {
  CertificateStore,
  DEFAULT_COMMON_NAME,
  DEFAULT_VALIDITY_DAYS,
  EXPIRY_WARNING_DAYS,
  MAX_VALIDITY_DAYS,
  summarize,
  type CertificateSummary,
  type PartnerCredential,
} from './certificate-store';
import {
  CertificateTokenClient,
  type AcquiredToken,
  type GetTokenOptions,
  type TokenProvider,
} from './certificate-token-client';
import {
  readCertificateDirectoryConfig,
  readPartnerConfig,
  readRotationConfig,
  readTokenConfig,
  type Env,
  type TokenConfig,
} from './config';
import { HttpsNetworkClient, type DecodedAssertion } from './https-network-client';
import { rotateCertificate } from './rotation';
import { SharedTokenCache } from './shared-token-cache';
import { CachedTokenProvider, TokenCache, type TokenFetcher } from './token-cache';

export const USAGE = `Usage: partner-worker <command> [options]

Commands:
  cert create [--common-name CN] [--days N] [--force] [--json]
                      generate the partner's key pair and self-signed certificate in
                      PARTNER_CERT_DIR: partner.key.pem (0600), partner.crt.pem, partner.cer (DER,
                      the file to upload to the app registration)
  cert show [--json]  show the certificate, its thumbprints and expiry
  cert export --format cer|pem|pfx|keycredential [--out FILE]
                      export the public certificate (.cer DER, PEM), the keyCredential JSON
                      Graph expects, or a PFX with the key (password from PARTNER_PFX_PASSWORD);
                      cer and pfx need --out; pem and keycredential go to stdout without it
  cert import (--pfx FILE | --cert FILE [--key FILE]) [--force] [--json]
                      take a certificate made elsewhere: a PFX (PARTNER_PFX_PASSWORD), or a
                      PEM/DER certificate with its PKCS#1/PKCS#8/encrypted PKCS#8 key
                      (PARTNER_IMPORT_KEY_PASSPHRASE); without --key, the key from "cert csr"
  cert rotate [--days N] [--common-name CN] [--old-key-id GUID] [--json]
                      make the next certificate, register it with Graph addKey (proof signed by
                      the current one, with the partner's own Graph token), switch to it and
                      remove the old one with removeKey (its keyId from partner.key-id or
                      --old-key-id); where addKey is refused, names the .cer to send instead.
                      Needs PARTNER_APP_OBJECT_ID (and PARTNER_GRAPH_URL for the emulator)
  cert csr [--common-name CN] [--out FILE] [--json]
                      a new key (kept as partner.pending.key.pem) and a CSR to send to your CA;
                      then "cert import --cert issued.crt"
  token get [--json]  get an access token and print its decoded claims (never the token)
  call <path> [--times N] [--json]
                      call the API at PARTNER_API_BASE_URL + path with a bearer token, N times
  help                show this text

Options:
  --common-name CN    certificate subject CN (default ${DEFAULT_COMMON_NAME})
  --days N            validity in days, 1 to ${MAX_VALIDITY_DAYS} (default ${DEFAULT_VALIDITY_DAYS})
  --force             replace an existing key pair
  --times N           number of calls (default 1)
  --json              one JSON object per line on stdout

Environment:
  ENTRA_INSTANCE        authority host (default https://login.microsoftonline.com)
  PARTNER_TENANT_ID     tenant GUID                     (token get, call)
  PARTNER_CLIENT_ID     the partner app's client id     (token get, call)
  PARTNER_SCOPE         e.g. api://certflow-orders/.default (token get, call)
  PARTNER_API_BASE_URL  the API through the gateway     (call)
  PARTNER_CERT_DIR      key and certificate directory (default .certflow/partner)
  PARTNER_CA_FILE       extra CA (PEM) trusted for the authority and the API
  PARTNER_KEY_PASSPHRASE  keep the private key encrypted at rest with it (8+ characters)
  PARTNER_CERT_EXPIRY_WARNING_DAYS  warn when fewer days are left (default 30)
  PARTNER_PFX_PASSWORD  password for cert export --format pfx and cert import --pfx
  PARTNER_IMPORT_KEY_PASSPHRASE  passphrase of an encrypted key given to cert import --key
  PARTNER_APP_OBJECT_ID the partner application's object id (cert rotate)
  PARTNER_GRAPH_URL     Graph base URL (default https://graph.microsoft.com/v1.0)
  PARTNER_REDIS_URL     redis://… : replicas share one token (optional)
  PARTNER_CACHE_KEY     32 random bytes (base64 or hex): encrypts tokens in Redis (with PARTNER_REDIS_URL)

Exit status: 0 success, 1 failure, 2 usage error.`;

export interface CliIo {
  env: Env;
  cwd: string;
  stdout(line: string): void;
  stderr(line: string): void;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

type Emit = (event: Record<string, unknown>) => void;

interface Flags {
  json: boolean;
  force: boolean;
  'common-name'?: string;
  days?: string;
  times?: string;
  format?: string;
  out?: string;
  pfx?: string;
  cert?: string;
  key?: string;
  'old-key-id'?: string;
  help: boolean;
}

const OPTIONS = {
  json: { type: 'boolean', default: false },
  force: { type: 'boolean', default: false },
  'common-name': { type: 'string' },
  days: { type: 'string' },
  times: { type: 'string' },
  format: { type: 'string' },
  out: { type: 'string' },
  pfx: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  'old-key-id': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** Which flags each command accepts; anything else is a usage error. */
const ALLOWED: Record<string, (keyof Flags)[]> = {
  'cert create': ['json', 'force', 'common-name', 'days'],
  'cert show': ['json'],
  'cert export': ['format', 'out'],
  'cert import': ['pfx', 'cert', 'key', 'force', 'json'],
  'cert csr': ['common-name', 'out', 'json'],
  'cert rotate': ['days', 'common-name', 'old-key-id', 'json'],
  'token get': ['json'],
  call: ['json', 'times'],
};

function positiveInt(name: string, raw: string | undefined, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) {
    throw new UsageError(`--${name} must be a whole number from 1 to ${max}, got "${raw}"`);
  }
  return Number(raw);
}

function decodeClaims(accessToken: string): Record<string, unknown> | null {
  try {
    return decodeJwt(accessToken) as Record<string, unknown>;
  } catch {
    return null; // not a JWT (opaque tokens exist); never print it
  }
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let values: Flags;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: OPTIONS,
      allowPositionals: true,
      strict: true,
    }) as {
      values: Flags;
      positionals: string[];
    });
  } catch (err) {
    io.stderr(`partner-worker: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help || positionals[0] === 'help') {
    io.stdout(USAGE);
    return 0;
  }

  try {
    const [group, sub, ...rest] = positionals;
    const command = group === 'call' ? 'call' : `${group ?? ''} ${sub ?? ''}`.trim();
    const allowed = ALLOWED[command];
    if (!allowed)
      throw new UsageError(
        group === undefined ? 'a command is required' : `unknown command "${positionals.join(' ')}"`,
      );
    for (const [flag, v] of Object.entries(values)) {
      const given = typeof v === 'boolean' ? v : v !== undefined;
      if (given && flag !== 'help' && !allowed.includes(flag as keyof Flags))
        throw new UsageError(`${command} does not take --${flag}`);
    }
    const extra = command === 'call' ? positionals.slice(2) : rest;
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);

    const emit: Emit = (event) => io.stdout(JSON.stringify(event));
    switch (command) {
      case 'cert create':
        return certCreate(io, values, emit);
      case 'cert show':
        return certShow(io, values, emit);
      case 'cert export':
        return certExport(io, values);
      case 'cert import':
        return certImport(io, values, emit);
      case 'cert csr':
        return certCsr(io, values, emit);
      case 'cert rotate':
        return await certRotate(io, values, emit);
      case 'token get':
        return await tokenGet(io, values.json, emit);
      default: {
        const path = sub;
        if (path === undefined) throw new UsageError('call needs a path, e.g. call /orders');
        if (!path.startsWith('/')) throw new UsageError(`the path must start with "/", got "${path}"`);
        return await call(io, path, positiveInt('times', values.times, 1, 10_000), values.json, emit);
      }
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`partner-worker: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    io.stderr(`partner-worker: error: ${(err as Error).message}`);
    return 1;
  }
}

function printCertificate(
  io: CliIo,
  summary: CertificateSummary,
  json: boolean,
  emit: Emit,
  created: boolean,
): void {
  if (json) {
    emit({ event: 'certificate', created, ...summary });
    return;
  }
  io.stdout(
    [
      created
        ? `Created a key pair and certificate in ${summary.certificateDirectory}`
        : `Partner certificate in ${summary.certificateDirectory}`,
      `  subject        ${summary.subject}`,
      `  valid          ${summary.notBefore} to ${summary.notAfter} (${summary.status}, ${summary.daysUntilExpiry} days left)`,
      `  SHA-256        ${summary.thumbprints.sha256Hex}`,
      `  SHA-1 (x5t)    ${summary.thumbprints.sha1Hex}`,
      `  private key    ${summary.privateKeyPath} (0600, keep it here)`,
      `  certificate    ${summary.certificatePath}`,
      `  upload this    ${summary.cerPath} (DER, public key only)`,
    ].join('\n'),
  );
}

function warnIfExpiringSoon(
  io: CliIo,
  credential: PartnerCredential,
  warningDays = EXPIRY_WARNING_DAYS,
): void {
  const summary = summarize(credential);
  if (summary.status === 'valid' && summary.daysUntilExpiry < warningDays) {
    io.stderr(
      `partner-worker: warning: the certificate expires in ${summary.daysUntilExpiry} days (${summary.notAfter}); rotate it soon`,
    );
  }
}

function certCreate(io: CliIo, values: Flags, emit: Emit): number {
  const days = positiveInt('days', values.days, DEFAULT_VALIDITY_DAYS, MAX_VALIDITY_DAYS);
  const commonName = values['common-name'];
  if (commonName !== undefined && commonName.trim() === '')
    throw new UsageError('--common-name must not be empty');
  const { certDir, keyPassphrase } = readCertificateDirectoryConfig(io.env, io.cwd);
  const credential = new CertificateStore(certDir).create({
    commonName: commonName ?? DEFAULT_COMMON_NAME,
    days,
    force: values.force,
    ...(keyPassphrase ? { passphrase: keyPassphrase } : {}),
  });
  printCertificate(io, summarize(credential), values.json, emit, true);
  return 0;
}

function certShow(io: CliIo, values: Flags, emit: Emit): number {
  const { certDir, keyPassphrase } = readCertificateDirectoryConfig(io.env, io.cwd);
  const summary = summarize(new CertificateStore(certDir).read(keyPassphrase));
  printCertificate(io, summary, values.json, emit, false);
  if (summary.status !== 'valid') {
    io.stderr(
      `partner-worker: error: the certificate is ${summary.status} (valid ${summary.notBefore} to ${summary.notAfter})`,
    );
    return 1;
  }
  return 0;
}

function readInput(io: CliIo, flag: string, file: string): Buffer {
  const path = isAbsolute(file) ? file : resolvePath(io.cwd, file);
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`--${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function outputPath(io: CliIo, file: string): string {
  return isAbsolute(file) ? file : resolvePath(io.cwd, file);
}

const EXPORT_FORMATS = ['cer', 'pem', 'pfx', 'keycredential'] as const;

function certExport(io: CliIo, values: Flags): number {
  const format = values.format;
  if (!format || !(EXPORT_FORMATS as readonly string[]).includes(format))
    throw new UsageError(`--format must be one of ${EXPORT_FORMATS.join(', ')}`);
  if ((format === 'cer' || format === 'pfx') && !values.out)
    throw new UsageError(`--format ${format} is binary: give --out FILE`);
  const { certDir, keyPassphrase } = readCertificateDirectoryConfig(io.env, io.cwd);
  const credential = new CertificateStore(certDir).read(keyPassphrase);
  let data: string | Buffer;
  let mode = 0o644;
  switch (format) {
    case 'cer':
      data = credential.certificate.der;
      break;
    case 'pem':
      data = credential.certificate.pem;
      break;
    case 'keycredential':
      data = `${JSON.stringify(keyCredentialFor(credential.certificate), null, 2)}\n`;
      break;
    default: {
      const password = io.env['PARTNER_PFX_PASSWORD'];
      if (!password)
        throw new Error('PARTNER_PFX_PASSWORD: is required for --format pfx (the PFX holds the private key)');
      data = exportPkcs12({
        privateKeyPem: credential.privateKeyPem,
        certificatePem: credential.certificate.pem,
        password,
        friendlyName: credential.certificate.subject,
      });
      mode = 0o600;
    }
  }
  if (values.out) {
    const path = outputPath(io, values.out);
    writeFileAtomic(path, data, mode);
    io.stderr(`partner-worker: wrote ${format} to ${path}`);
  } else io.stdout(String(data).replace(/\n$/, ''));
  return 0;
}

function certImport(io: CliIo, values: Flags, emit: Emit): number {
  if (!values.pfx === !values.cert)
    throw new UsageError('cert import needs either --pfx FILE or --cert FILE');
  if (values.pfx && values.key) throw new UsageError('--key goes with --cert, not with --pfx');
  const { certDir, keyPassphrase } = readCertificateDirectoryConfig(io.env, io.cwd);
  const store = new CertificateStore(certDir);
  const importKeyPassphrase = io.env['PARTNER_IMPORT_KEY_PASSPHRASE'] || undefined;
  const credential = store.import({
    ...(values.pfx
      ? { pfx: readInput(io, 'pfx', values.pfx), pfxPassword: io.env['PARTNER_PFX_PASSWORD'] ?? '' }
      : { certificate: readInput(io, 'cert', values.cert!) }),
    ...(values.key ? { privateKeyPem: readInput(io, 'key', values.key).toString('utf8') } : {}),
    ...(importKeyPassphrase ? { keyPassphrase: importKeyPassphrase } : {}),
    ...(keyPassphrase ? { passphrase: keyPassphrase } : {}),
    force: values.force,
  });
  printCertificate(io, summarize(credential), values.json, emit, true);
  return 0;
}

function certCsr(io: CliIo, values: Flags, emit: Emit): number {
  const commonName = values['common-name'];
  if (commonName !== undefined && commonName.trim() === '')
    throw new UsageError('--common-name must not be empty');
  const { certDir, keyPassphrase } = readCertificateDirectoryConfig(io.env, io.cwd);
  const result = new CertificateStore(certDir).createCsr({
    commonName: commonName ?? DEFAULT_COMMON_NAME,
    ...(keyPassphrase ? { passphrase: keyPassphrase } : {}),
  });
  if (values.out) writeFileAtomic(outputPath(io, values.out), result.csrPem, 0o644);
  if (values.json)
    emit({
      event: 'csr',
      csrPath: result.csrPath,
      pendingKeyPath: result.pendingKeyPath,
      csr: result.csrPem,
    });
  else
    io.stdout(
      `${result.csrPem.trimEnd()}\nSend this CSR (${result.csrPath}) to your CA; the new key waits in ${result.pendingKeyPath}.\nThen: cert import --cert <issued certificate>`,
    );
  return 0;
}

async function certRotate(io: CliIo, values: Flags, emit: Emit): Promise<number> {
  const days = positiveInt('days', values.days, DEFAULT_VALIDITY_DAYS, MAX_VALIDITY_DAYS);
  const oldKeyId = values['old-key-id'];
  if (oldKeyId !== undefined && !/^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$/i.test(oldKeyId))
    throw new UsageError(`--old-key-id must be a GUID, got "${oldKeyId}"`);
  const config = readRotationConfig(io.env, io.cwd);
  const store = new CertificateStore(config.certDir);
  const current = store.load(new Date(), config.keyPassphrase);
  const network = new HttpsNetworkClient(config.caPem ? { ca: config.caPem } : {});
  const graphTokens = new CertificateTokenClient({
    ...config,
    scope: config.graphScope,
    credential: current,
    networkClient: network,
  });
  const graph = new ApiClient({
    baseUrl: config.graphUrl,
    tokens: { getToken: () => graphTokens.fetchToken({ skipCache: true }) },
    ...(config.caPem ? { ca: config.caPem } : {}),
  });
  try {
    const result = await rotateCertificate({
      store,
      current,
      applicationObjectId: config.applicationObjectId,
      graph,
      days,
      ...(values['common-name'] ? { commonName: values['common-name'] } : {}),
      ...(oldKeyId ? { oldKeyId } : {}),
      ...(config.keyPassphrase ? { passphrase: config.keyPassphrase } : {}),
      log: (m) => io.stderr(`partner-worker: ${m}`),
    });
    if (values.json)
      emit({
        event: 'rotation',
        ...result,
        ...(result.status === 'rotated'
          ? { credential: undefined, certificate: summarize(result.credential) }
          : {}),
      });
    else io.stdout(result.message);
    if (result.status === 'refused') {
      io.stderr(`partner-worker: error: ${result.message}`);
      return 1;
    }
    return 0;
  } finally {
    graph.close();
    network.close();
  }
}

/** One worker session: the loaded credential, one network client and one MSAL instance. */
interface Session {
  tokens: TokenProvider;
  close(): void;
}

function openSession(io: CliIo, config: TokenConfig, json: boolean, emit: Emit): Session {
  const credential = new CertificateStore(config.certDir).load(new Date(), config.keyPassphrase);
  warnIfExpiringSoon(io, credential, config.expiryWarningDays);
  const onAssertion = (a: DecodedAssertion) => {
    if (json) emit({ event: 'assertion', header: a.header, claims: a.claims });
    else
      io.stdout(
        `client assertion sent: header ${JSON.stringify(a.header)} claims ${JSON.stringify(a.claims)} (signature not shown)`,
      );
  };
  const network = new HttpsNetworkClient({
    ...(config.caPem ? { ca: config.caPem } : {}),
    // Reported once an answer came back, so that only assertions that really reached the authority are shown.
    observer: {
      onResponse: (exchange, status) => status > 0 && exchange.assertion && onAssertion(exchange.assertion),
    },
  });
  const client = new CertificateTokenClient({ ...config, credential, networkClient: network });
  // certflow's cache decides when to ask; MSAL is always asked with skipCache (see token-cache.ts).
  const ownFetch: TokenFetcher = (ctx) => client.fetchToken({ scope: ctx.key.scope, skipCache: true });
  // With PARTNER_REDIS_URL, replicas share tokens: this one asks the authority only when no other has.
  const shared = config.sharedCache
    ? new SharedTokenCache({
        redisUrl: config.sharedCache.redisUrl,
        encryptionKey: config.sharedCache.cacheKey,
        fetcher: ownFetch,
        log: (m) => io.stderr(`partner-worker: ${m}`),
      })
    : undefined;
  const cache = new TokenCache({ fetcher: shared ? shared.fetcher : ownFetch });
  const cached = new CachedTokenProvider(cache, {
    authority: client.authority,
    clientId: config.clientId,
    scope: config.scope,
  });
  const tokens: TokenProvider = {
    async getToken(options?: GetTokenOptions): Promise<AcquiredToken> {
      const token = await cached.getToken(options);
      const claims = decodeClaims(token.accessToken);
      if (json)
        emit({ event: 'token', source: token.source, claims, expiresOn: token.expiresOn.toISOString() });
      else io.stdout(`token from ${token.source}, expires ${token.expiresOn.toISOString()}`);
      return token;
    },
  };
  return {
    tokens,
    close: () => {
      cache.close();
      shared?.close();
      network.close();
    },
  };
}

async function tokenGet(io: CliIo, json: boolean, emit: Emit): Promise<number> {
  const config = readTokenConfig(io.env, io.cwd);
  const session = openSession(io, config, json, emit);
  try {
    const token = await session.tokens.getToken();
    if (!json) io.stdout(`claims:\n${JSON.stringify(decodeClaims(token.accessToken), null, 2)}`);
    return 0;
  } finally {
    session.close();
  }
}

async function call(io: CliIo, path: string, times: number, json: boolean, emit: Emit): Promise<number> {
  const config = readPartnerConfig(io.env, io.cwd);
  const session = openSession(io, config, json, emit);
  const api = new ApiClient({
    baseUrl: config.apiBaseUrl,
    tokens: session.tokens,
    ...(config.caPem ? { ca: config.caPem } : {}),
  });
  try {
    for (let i = 1; i <= times; i++) {
      const response = await api.get(path);
      if (json) emit({ event: 'response', status: response.status, body: response.body });
      else
        io.stdout(
          `HTTP ${response.status}\n${typeof response.body === 'string' ? response.body : JSON.stringify(response.body, null, 2)}`,
        );
      if (response.status < 200 || response.status >= 300) {
        io.stderr(
          `partner-worker: error: GET ${path} answered HTTP ${response.status}${times > 1 ? ` (call ${i} of ${times})` : ''}`,
        );
        return 1;
      }
    }
    return 0;
  } finally {
    api.close();
    session.close();
  }
}
