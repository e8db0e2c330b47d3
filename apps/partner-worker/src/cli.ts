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
import { exportPkcs12, keyCredentialFor, writeFileAtomic, type RsaKeySize } from '@certflow/certs';
import { AllowedHostsError, isLoopbackAddress, parseAllowedHosts } from '@certflow/loopback-guard';
import { decodeJwt, decodeProtectedHeader } from 'jose';
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
  ConfigError,
  readCertificateDirectoryConfig,
  readPartnerConfig,
  readRotationConfig,
  readTokenConfig,
  type Env,
  type RotationConfig,
  type TokenConfig,
} from './config';
import { HttpsNetworkClient, type DecodedAssertion } from './https-network-client';
import { redact, startFacade } from './facade';
import { rotateCertificate, type RotationResult } from './rotation';
import { SharedTokenCache } from './shared-token-cache';
import { CachedTokenProvider, TokenCache, type TokenFetcher } from './token-cache';
import { PartnerWorker } from './worker';

export const USAGE = `Usage: partner-worker <command> [options]

Commands:
  cert create [--common-name CN] [--days N] [--key-size 2048|3072|4096] [--force] [--json]
                      generate the partner's RSA key pair and self-signed certificate in
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
  cert rotate [--days N] [--common-name CN] [--old-key-id GUID] [--key-size N]
              [--grace-seconds N] [--json]
                      make the next certificate (key size: the current one's), register it with
                      Graph addKey (proof signed by the current one, with the partner's own Graph
                      token), switch to it and, --grace-seconds later (default 0), remove the old
                      one with removeKey (its keyId from partner.key-id or --old-key-id); where
                      addKey is refused, names the .cer to send instead.
                      Needs PARTNER_APP_OBJECT_ID (and PARTNER_GRAPH_URL for the emulator)
  cert csr [--common-name CN] [--key-size N] [--out FILE] [--json]
                      a new key (kept as partner.pending.key.pem) and a CSR to send to your CA;
                      then "cert import --cert issued.crt"
  token get [--json]  get an access token and print its decoded claims (never the token)
  token decode [TOKEN] [--json]
                      decode a JWT given as argument or on stdin: header and claims, NOT verified
  call <path> [--times N] [--json]
                      call the API at PARTNER_API_BASE_URL + path with a bearer token, N times
  serve [--port N] [--host H] [--allowed-host NAME]
                      HTTP facade for load tests: GET /call/<path>, /metrics, /health, POST /rotate;
                      prints {"event":"listening","url":"http://H:PORT"} once listening
  run --path P [--interval-ms N] [--times N] [--metrics-port N] [--allowed-host NAME]
                      the long-running worker: calls the API path every N ms, JSON lines on stdout
  help [command]      show this text, or one command's (also: <command> --help)

Options:
  --common-name CN    certificate subject CN (default ${DEFAULT_COMMON_NAME})
  --days N            validity in days, 1 to ${MAX_VALIDITY_DAYS} (default ${DEFAULT_VALIDITY_DAYS})
  --force             replace an existing key pair
  --times N           number of calls (call: default 1; run: default until stopped)
  --json              one JSON object per line on stdout
  --port N, --host H  where serve listens (default 127.0.0.1, port 0 = any free port)
  --path P            the API path run calls, e.g. /orders
  --interval-ms N     pause between run's calls (default 10000)
  --metrics-port N    run also serves /metrics and /health on 127.0.0.1:N (0 = any free port)
  --allowed-host NAME a Host name serve and --metrics-port answer to besides localhost, 127.0.0.1
                      and [::1] (repeatable; others get 421, a cross-site Origin 403)

Environment:
  ENTRA_INSTANCE        authority host (default https://login.microsoftonline.com)
  PARTNER_TENANT_ID     tenant GUID                     (token get, call)
  PARTNER_CLIENT_ID     the partner app's client id     (token get, call)
  PARTNER_SCOPE         e.g. api://certflow-orders/.default (token get, call)
  PARTNER_API_BASE_URL  the API through the gateway     (call, serve, run)
  PARTNER_CERT_DIR      key and certificate directory (default .certflow/partner)
  PARTNER_CA_FILE       extra CA (PEM) trusted for the authority and the API
  PARTNER_KEY_PASSPHRASE  keep the private key encrypted at rest with it (8+ characters)
  PARTNER_CERT_EXPIRY_WARNING_DAYS  warn when fewer days are left (default 30)
  PARTNER_PFX_PASSWORD  password for cert export --format pfx and cert import --pfx
  PARTNER_IMPORT_KEY_PASSPHRASE  passphrase of an encrypted key given to cert import --key
  PARTNER_APP_OBJECT_ID the partner application's object id (cert rotate; serve's POST /rotate)
  PARTNER_GRAPH_URL     Graph base URL (default https://graph.microsoft.com/v1.0)
  PARTNER_REDIS_URL     redis://… : replicas share one token (optional)
  PARTNER_CACHE_KEY     32 random bytes (base64 or hex): encrypts tokens in Redis (with PARTNER_REDIS_URL)
  PARTNER_ALLOWED_HOSTS more --allowed-host names, comma-separated (serve, run --metrics-port)

serve and run pick up a certificate rotated by another process (files in PARTNER_CERT_DIR)
without a restart; SIGTERM or SIGINT stops them gracefully.

Exit status: 0 success, 1 failure, 2 usage error.`;

export interface CliIo {
  env: Env;
  cwd: string;
  stdout(line: string): void;
  stderr(line: string): void;
  /** Reads all of stdin (token decode without an argument). */
  readStdin?(): Promise<string>;
  /** Aborted on SIGTERM/SIGINT: serve and run stop gracefully. Without it they run until killed. */
  stop?: AbortSignal;
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
  'key-size'?: string;
  'grace-seconds'?: string;
  port?: string;
  host?: string;
  path?: string;
  'interval-ms'?: string;
  'metrics-port'?: string;
  'allowed-host'?: string[];
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
  'key-size': { type: 'string' },
  'grace-seconds': { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  path: { type: 'string' },
  'interval-ms': { type: 'string' },
  'metrics-port': { type: 'string' },
  'allowed-host': { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** Which flags each command accepts; anything else is a usage error. */
const ALLOWED: Record<string, (keyof Flags)[]> = {
  'cert create': ['json', 'force', 'common-name', 'days', 'key-size'],
  'cert show': ['json'],
  'cert export': ['format', 'out'],
  'cert import': ['pfx', 'cert', 'key', 'force', 'json'],
  'cert csr': ['common-name', 'out', 'json', 'key-size'],
  'cert rotate': ['days', 'common-name', 'old-key-id', 'key-size', 'grace-seconds', 'json'],
  'token get': ['json'],
  'token decode': ['json'],
  call: ['json', 'times'],
  serve: ['port', 'host', 'allowed-host'],
  run: ['path', 'interval-ms', 'times', 'metrics-port', 'allowed-host'],
};

function positiveInt(name: string, raw: string | undefined, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) {
    throw new UsageError(`--${name} must be a whole number from 1 to ${max}, got "${raw}"`);
  }
  return Number(raw);
}

/** --key-size: 2048 (default for new keys), 3072 or 4096. */
function keySize(raw: string | undefined): RsaKeySize | undefined {
  if (raw === undefined) return undefined;
  if (raw !== '2048' && raw !== '3072' && raw !== '4096')
    throw new UsageError(`--key-size must be 2048, 3072 or 4096, got "${raw}"`);
  return Number(raw) as RsaKeySize;
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
    const words = positionals[0] === 'help' ? positionals.slice(1) : positionals;
    io.stdout(commandHelp(words) ?? USAGE);
    return 0;
  }

  try {
    const [group, sub, ...rest] = positionals;
    const single = group === 'call' || group === 'serve' || group === 'run';
    const command = single ? group : `${group ?? ''} ${sub ?? ''}`.trim();
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
    const extra =
      command === 'call'
        ? positionals.slice(2)
        : command === 'serve' || command === 'run'
          ? positionals.slice(1)
          : command === 'token decode'
            ? rest.slice(1)
            : rest;
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
      case 'token decode':
        return await tokenDecode(io, rest[0], values.json, emit);
      case 'serve':
        return await serve(io, values);
      case 'run':
        return await runWorker(io, values, emit);
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
  const size = keySize(values['key-size']);
  const credential = new CertificateStore(certDir).create({
    commonName: commonName ?? DEFAULT_COMMON_NAME,
    days,
    ...(size ? { keySize: size } : {}),
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
  const size = keySize(values['key-size']);
  const result = new CertificateStore(certDir).createCsr({
    commonName: commonName ?? DEFAULT_COMMON_NAME,
    ...(size ? { keySize: size } : {}),
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
  const size = keySize(values['key-size']);
  const graceRaw = values['grace-seconds'];
  if (graceRaw !== undefined && (!/^\d+$/.test(graceRaw) || Number(graceRaw) > 3_600))
    throw new UsageError(`--grace-seconds must be a whole number from 0 to 3600, got "${graceRaw}"`);
  const graceSeconds = graceRaw === undefined ? 0 : Number(graceRaw);
  const config = readRotationConfig(io.env, io.cwd);
  const store = new CertificateStore(config.certDir);
  const current = store.load(new Date(), config.keyPassphrase);
  const result = await rotateWithGraph(config, store, current, {
    days,
    ...(values['common-name'] ? { commonName: values['common-name'] } : {}),
    ...(oldKeyId ? { oldKeyId } : {}),
    ...(size ? { keySize: size } : {}),
    ...(graceSeconds ? { graceMs: graceSeconds * 1000 } : {}),
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
}

/**
 * Rotation through Graph addKey/removeKey with the partner's own Graph token (client credentials
 * with its current certificate): `cert rotate`, and serve's POST /rotate (which switches in process).
 */
async function rotateWithGraph(
  config: RotationConfig,
  store: CertificateStore,
  current: PartnerCredential,
  options: {
    days?: number;
    commonName?: string;
    oldKeyId?: string;
    keySize?: RsaKeySize;
    graceMs?: number;
    onSwitch?: (next: PartnerCredential) => void;
    log: (message: string) => void;
  },
): Promise<RotationResult> {
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
    return await rotateCertificate({
      store,
      current,
      applicationObjectId: config.applicationObjectId,
      graph,
      ...(options.days ? { days: options.days } : {}),
      ...(options.commonName ? { commonName: options.commonName } : {}),
      ...(options.oldKeyId ? { oldKeyId: options.oldKeyId } : {}),
      ...(options.keySize ? { keySize: options.keySize } : {}),
      ...(options.graceMs ? { graceMs: options.graceMs } : {}),
      ...(config.keyPassphrase ? { passphrase: config.keyPassphrase } : {}),
      ...(options.onSwitch ? { onSwitch: options.onSwitch } : {}),
      log: options.log,
    });
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

const COMMAND_HELP: Record<string, string> = {
  serve: `Usage: partner-worker serve [--port N] [--host H] [--allowed-host NAME]

A small HTTP facade for load tests. Once listening it prints exactly one line on stdout:
  {"event":"listening","url":"http://127.0.0.1:PORT"}
Logs go to stderr. Routes:
  GET  /call/<api path and query>  a token from certflow's cache (and the shared Redis tier with
                                    PARTNER_REDIS_URL), then GET PARTNER_API_BASE_URL + path;
                                    answers with the upstream status and body. No answer:
                                    502 {"error":"token_unavailable"|"upstream_failed","reason":…},
                                    504 {"error":"upstream_timeout","reason":…}; 400 invalid_path
  GET  /metrics                    Prometheus text: token cache hits/misses, token requests,
                                    refreshes, shared hits/fallbacks, calls by outcome and status,
                                    call latency, certificate days until expiry and expiring gauge
  GET  /health                     {"status":"ok","certificate":{…}}
  POST /rotate                     loopback clients only: rotate the certificate in process
                                    (needs PARTNER_APP_OBJECT_ID), switch without a restart
  anything else                    404 {"error":"not_found"}
Every route answers only to its own origin, so that no web page can use it (DNS rebinding,
cross-site requests): a Host other than localhost, 127.0.0.1, [::1] (with the port) or an
--allowed-host name gets 421 {"error":"misdirected_request"}; an Origin other than the facade's
own, or Sec-Fetch-Site cross-site/same-site, gets 403 {"error":"forbidden"}. Nothing is called.
A certificate rotated by another process (cert rotate) is picked up from PARTNER_CERT_DIR without
a restart; damaged or half-written files are ignored with a log line. SIGTERM/SIGINT: graceful stop.

Options:
  --port N   0 to 65535 (default 0: any free port)
  --host H   address to listen on (default 127.0.0.1)
  --allowed-host NAME  another Host name to answer to (repeatable; also PARTNER_ALLOWED_HOSTS,
             comma-separated). On a non-loopback --host without any, the Host name is not checked.
Needs PARTNER_TENANT_ID, PARTNER_CLIENT_ID, PARTNER_SCOPE, PARTNER_API_BASE_URL (see help).`,
  run: `Usage: partner-worker run --path P [--interval-ms N] [--times N] [--metrics-port N]
                           [--allowed-host NAME]

The long-running worker: GET PARTNER_API_BASE_URL + P every N ms (default 10000) until stopped
(SIGTERM/SIGINT) or --times calls were made. One JSON object per line on stdout:
  {"event":"started","path":…,"intervalMs":…,"certificate":{…}}
  {"event":"warning","reason":"certificate-expiring","daysUntilExpiry":…,"notAfter":…}
  {"event":"response","n":1,"status":200,"ms":12.3}
  {"event":"call-failed","n":2,"reason":…}
  {"event":"certificate-switched","certificate":{…}}
  {"event":"stopped","calls":…,"failed":…}
It refuses to start with an expired certificate, and warns (stderr, event, metric) when fewer than
PARTNER_CERT_EXPIRY_WARNING_DAYS (default 30) days are left. A certificate rotated by another
process is picked up without a restart. With --metrics-port it also serves GET /metrics and
GET /health on 127.0.0.1, checking Host and Origin as serve does (--allowed-host,
PARTNER_ALLOWED_HOSTS). Exit status 0 when every call answered 2xx, 1 otherwise.`,
  'token decode': `Usage: partner-worker token decode [TOKEN] [--json]

Decodes a JWT given as the argument or on stdin and prints its header and claims (times shown as
dates too). Nothing is verified: neither the signature nor the issuer, audience or lifetime, so the
output must not be trusted as proof of anything. The signature is never printed.
With --json: {"event":"decoded","verified":false,"header":{…},"claims":{…},"expired":bool}.`,
};

function commandHelp(words: string[]): string | undefined {
  const [group, sub] = words;
  if (group === undefined) return undefined;
  return COMMAND_HELP[group] ?? (sub !== undefined ? COMMAND_HELP[`${group} ${sub}`] : undefined);
}

function portNumber(name: string, raw: string | undefined): number {
  if (raw === undefined) return 0;
  if (!/^\d+$/.test(raw) || Number(raw) > 65_535)
    throw new UsageError(`--${name} must be a port number from 0 to 65535, got "${raw}"`);
  return Number(raw);
}

/** Resolves when `signal` aborts (never without a signal). */
function stopped(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!signal) return;
    if (signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

async function tokenDecode(
  io: CliIo,
  argument: string | undefined,
  json: boolean,
  emit: Emit,
): Promise<number> {
  let token = argument;
  if (token === undefined) {
    if (!io.readStdin) throw new UsageError('token decode needs a token as argument or on stdin');
    token = await io.readStdin();
  }
  token = token.trim().replace(/^Bearer\s+/i, '');
  if (token === '') throw new UsageError('token decode needs a token as argument or on stdin');
  const parts = token.split('.');
  if (parts.length === 5)
    throw new Error('this is an encrypted token (JWE): it cannot be decoded without the key');
  if (parts.length !== 3)
    throw new Error(`not a JWT: expected three dot-separated parts, got ${parts.length}`);
  let header: Record<string, unknown>;
  let claims: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(token) as Record<string, unknown>;
    claims = decodeJwt(token) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`not a JWT: ${(err as Error).message}`);
  }
  const exp = typeof claims.exp === 'number' ? claims.exp : undefined;
  const expired = exp !== undefined ? exp * 1000 <= Date.now() : undefined;
  if (json) {
    emit({
      event: 'decoded',
      verified: false,
      header,
      claims,
      ...(expired !== undefined ? { expired } : {}),
    });
    return 0;
  }
  const times = ['iat', 'nbf', 'exp']
    .filter((c) => typeof claims[c] === 'number')
    .map((c) => `  ${c.padEnd(4)} ${new Date((claims[c] as number) * 1000).toISOString()}`);
  io.stdout(
    [
      'NOT VERIFIED: decoded only; the signature, issuer, audience and lifetime were not checked.',
      `header:\n${JSON.stringify(header, null, 2)}`,
      `claims:\n${JSON.stringify(claims, null, 2)}`,
      ...(times.length ? ['times (UTC):', ...times] : []),
      ...(expired ? ['this token has expired'] : []),
    ].join('\n'),
  );
  return 0;
}

function certificateEvent(status: ReturnType<PartnerWorker['certificateStatus']>): Record<string, unknown> {
  return { ...status };
}

/** --allowed-host names and PARTNER_ALLOWED_HOSTS, checked before anything starts. */
function allowedHosts(io: CliIo, values: Flags): string[] {
  const name = (source: string, list: () => string[]): string[] => {
    try {
      return list();
    } catch (err) {
      if (!(err instanceof AllowedHostsError)) throw err;
      if (source.startsWith('--')) throw new UsageError(`${source}: ${err.message}`);
      throw new ConfigError(source, err.message);
    }
  };
  return [
    ...new Set([
      ...name('--allowed-host', () => parseAllowedHosts(values['allowed-host'] ?? [])),
      ...name('PARTNER_ALLOWED_HOSTS', () => parseAllowedHosts(io.env['PARTNER_ALLOWED_HOSTS'] ?? '')),
    ]),
  ];
}

async function serve(io: CliIo, values: Flags): Promise<number> {
  const port = portNumber('port', values.port);
  const host = values.host ?? '127.0.0.1';
  if (host.trim() === '' || /\s/.test(host)) throw new UsageError(`--host must be an address, got "${host}"`);
  const names = allowedHosts(io, values);
  const config = readPartnerConfig(io.env, io.cwd);
  // Checked at start-up too: POST /rotate is on only when PARTNER_APP_OBJECT_ID is set (and valid).
  const rotationConfig = io.env['PARTNER_APP_OBJECT_ID']?.trim()
    ? readRotationConfig(io.env, io.cwd)
    : undefined;
  const log = (m: string) => io.stderr(`partner-worker: ${m}`);
  if (!isLoopbackAddress(host))
    log(
      `warning: serving on ${host}, not loopback: anyone who can reach it calls the API as this partner through GET /call (POST /rotate stays loopback-only)`,
    );
  const worker = new PartnerWorker({ config, log });
  try {
    warnIfExpiring(worker, log);
    const facade = await startFacade({
      worker,
      host,
      port,
      allowedHosts: names,
      log,
      ...(rotationConfig
        ? {
            rotate: () =>
              rotateWithGraph(rotationConfig, worker.store, worker.credential, {
                onSwitch: (next) => worker.switchCredential(next),
                log,
              }),
          }
        : {
            rotateUnavailableReason: 'set PARTNER_APP_OBJECT_ID (and PARTNER_GRAPH_URL) to rotate in process',
          }),
    });
    io.stdout(JSON.stringify({ event: 'listening', url: facade.url }));
    await stopped(io.stop);
    log('stopping: finishing the requests in progress');
    await facade.close(5_000);
    log('stopped');
    return 0;
  } finally {
    worker.close();
  }
}

function warnIfExpiring(worker: PartnerWorker, log: (m: string) => void): boolean {
  const status = worker.certificateStatus();
  if (status.expiring)
    log(
      `warning: the certificate expires in ${status.daysUntilExpiry} days (${status.notAfter}); rotate it soon (warning threshold PARTNER_CERT_EXPIRY_WARNING_DAYS)`,
    );
  return status.expiring;
}

async function runWorker(io: CliIo, values: Flags, emit: Emit): Promise<number> {
  const path = values.path;
  if (path === undefined) throw new UsageError('run needs --path, e.g. run --path /orders');
  if (!path.startsWith('/')) throw new UsageError(`--path must start with "/", got "${path}"`);
  const intervalMs =
    values['interval-ms'] === undefined
      ? 10_000
      : positiveInt('interval-ms', values['interval-ms'], 10_000, 86_400_000);
  const times = values.times === undefined ? Infinity : positiveInt('times', values.times, 1, 1_000_000_000);
  const metricsPort =
    values['metrics-port'] === undefined ? undefined : portNumber('metrics-port', values['metrics-port']);
  if (values['allowed-host'] !== undefined && metricsPort === undefined)
    throw new UsageError('--allowed-host applies to --metrics-port: give both or neither');
  const names = allowedHosts(io, values);
  const config = readPartnerConfig(io.env, io.cwd);
  const log = (m: string) => io.stderr(`partner-worker: ${m}`);
  const worker = new PartnerWorker({
    config,
    log,
    onCertificateSwitched: () =>
      emit({ event: 'certificate-switched', certificate: certificateEvent(worker.certificateStatus()) }),
  });
  let facade: Awaited<ReturnType<typeof startFacade>> | undefined;
  let calls = 0;
  let failed = 0;
  try {
    worker.api.urlFor(path); // a path that leaves the API base URL is refused before any call
    emit({
      event: 'started',
      path,
      intervalMs,
      ...(Number.isFinite(times) ? { times } : {}),
      certificate: certificateEvent(worker.certificateStatus()),
    });
    if (metricsPort !== undefined) {
      facade = await startFacade({
        worker,
        port: metricsPort,
        routes: 'observability',
        allowedHosts: names,
        log,
      });
      emit({ event: 'metrics', url: facade.url });
    }
    let warned = false;
    const stop = stopped(io.stop);
    let stopping = false;
    void stop.then(() => (stopping = true));
    while (!stopping && calls < times) {
      if (!warned && warnIfExpiring(worker, log)) {
        const status = worker.certificateStatus();
        emit({
          event: 'warning',
          reason: 'certificate-expiring',
          daysUntilExpiry: status.daysUntilExpiry,
          notAfter: status.notAfter,
        });
        warned = true;
      }
      calls++;
      try {
        const answer = await worker.call(path);
        emit({
          event: 'response',
          n: calls,
          status: answer.status,
          ms: Math.round(answer.seconds * 10_000) / 10,
        });
        if (answer.status < 200 || answer.status >= 300) failed++;
      } catch (err) {
        failed++;
        emit({ event: 'call-failed', n: calls, reason: redact((err as Error).message) });
      }
      if (calls >= times || stopping) break;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([stop, new Promise<void>((r) => (timer = setTimeout(r, intervalMs)))]);
      clearTimeout(timer);
    }
    emit({ event: 'stopped', calls, failed });
    return failed === 0 ? 0 : 1;
  } finally {
    await facade?.close(1_000);
    worker.close();
  }
}
