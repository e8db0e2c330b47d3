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
import { parseArgs } from 'node:util';
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
  readTokenConfig,
  type Env,
  type TokenConfig,
} from './config';
import { HttpsNetworkClient, type DecodedAssertion } from './https-network-client';
import { CachedTokenProvider, TokenCache } from './token-cache';

export const USAGE = `Usage: partner-worker <command> [options]

Commands:
  cert create [--common-name CN] [--days N] [--force] [--json]
                      generate the partner's key pair and self-signed certificate in
                      PARTNER_CERT_DIR: partner.key.pem (0600), partner.crt.pem, partner.cer (DER,
                      the file to upload to the app registration)
  cert show [--json]  show the certificate, its thumbprints and expiry
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
  help: boolean;
}

const OPTIONS = {
  json: { type: 'boolean', default: false },
  force: { type: 'boolean', default: false },
  'common-name': { type: 'string' },
  days: { type: 'string' },
  times: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** Which flags each command accepts; anything else is a usage error. */
const ALLOWED: Record<string, (keyof Flags)[]> = {
  'cert create': ['json', 'force', 'common-name', 'days'],
  'cert show': ['json'],
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

function warnIfExpiringSoon(io: CliIo, credential: PartnerCredential): void {
  const summary = summarize(credential);
  if (summary.status === 'valid' && summary.daysUntilExpiry < EXPIRY_WARNING_DAYS) {
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
  const { certDir } = readCertificateDirectoryConfig(io.env, io.cwd);
  const credential = new CertificateStore(certDir).create({
    commonName: commonName ?? DEFAULT_COMMON_NAME,
    days,
    force: values.force,
  });
  printCertificate(io, summarize(credential), values.json, emit, true);
  return 0;
}

function certShow(io: CliIo, values: Flags, emit: Emit): number {
  const { certDir } = readCertificateDirectoryConfig(io.env, io.cwd);
  const summary = summarize(new CertificateStore(certDir).read());
  printCertificate(io, summary, values.json, emit, false);
  if (summary.status !== 'valid') {
    io.stderr(
      `partner-worker: error: the certificate is ${summary.status} (valid ${summary.notBefore} to ${summary.notAfter})`,
    );
    return 1;
  }
  return 0;
}

/** One worker session: the loaded credential, one network client and one MSAL instance. */
interface Session {
  tokens: TokenProvider;
  close(): void;
}

function openSession(io: CliIo, config: TokenConfig, json: boolean, emit: Emit): Session {
  const credential = new CertificateStore(config.certDir).load();
  warnIfExpiringSoon(io, credential);
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
  const cache = new TokenCache({
    fetcher: (ctx) => client.fetchToken({ scope: ctx.key.scope, skipCache: true }),
  });
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
