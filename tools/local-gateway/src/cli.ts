/**
 * Command line for the gateway (`node tools/local-gateway/dist/main.js`):
 *
 *   --state-dir DIR        development CA location (required)
 *   --policy FILE          APIM policy XML (required)
 *   --backend URL          http:// URL of the API (required)
 *   --named-value K=V      a {{K}} substitution; repeatable
 *   --port P               default 0 (any free port)
 *   --host H               default 127.0.0.1
 *   --ca-file PEM          extra CA trusted for openid-config / JWKS
 *   --max-body-bytes N     request body limit, default 2 MiB
 *   --redis-url URL        redis:// URL for rate-limit-by-key counters shared by several gateways
 *   --entra-instance URL   Entra ID instance for validate-azure-ad-token (default https://login.microsoftonline.com)
 *   --global-policy FILE   global-scope policy XML (the API policy's <base /> inherits from it)
 *   --operation "METHOD /template=FILE"  operation-scope policy XML; repeatable, first match wins
 *   --subscription-key ID=KEY  an APIM subscription key (repeatable; several keys per ID allowed)
 *   --subscription-required    every request needs a valid subscription key
 *   --metrics-path PATH|off    Prometheus endpoint, default /metrics
 *   --client-ca-file PEM   turn on mTLS: trusted client CAs (Application Gateway SSL profile)
 *   --client-cert-mode M   strict (default: 400 without a trusted certificate) or passthrough
 *   --allowed-host NAME    a Host name the gateway answers to besides localhost, 127.0.0.1, [::1]; repeatable
 *   --header-timeout-ms N  request line and headers must arrive within N ms (default 10000), else 408
 *   --body-timeout-ms N    the whole body must arrive within N ms (default 10000), else 408
 *   --body-memory-bytes N  memory for all bodies being read at once (default 64 MiB), else 503
 *   --keep-alive-timeout-ms N  idle keep-alive connections close after N ms (default 5000)
 *   --upstream-timeout-ms N    backend deadline when the policy sets no forward-request timeout (default 60000)
 *   --max-url-bytes N      longest request target (default 8192), else 414
 *   --max-backend-connections N  connections to the backend at most (default 256)
 *
 * Prints `{"event":"listening","url":"https://localhost:P"}` on stdout once listening, then one
 * access-log line per request. A bad flag is a usage error naming the flag: exit code 2.
 *
 * CERTFLOW_CLOCK_OFFSET / CERTFLOW_CLOCK_FILE (see @certflow/clock) shift the time token lifetimes
 * and client certificates are judged by; a bad value is refused the same way (exit code 2).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseAllowedHosts } from '@certflow/loopback-guard';
import { clockFromEnvironment, clockNotice, type EnvironmentClock } from '@certflow/clock';
import { bufferedAccessLog } from './access-log';
import { DEFAULT_MAX_REQUEST_BODY_BYTES, GatewayOptions, RunningGateway, startGateway } from './gateway';

export const USAGE =
  'usage: node tools/local-gateway/dist/main.js --state-dir DIR --policy FILE --backend URL [--named-value NAME=VALUE ...] [--port P] [--host H] [--ca-file PEM] [--max-body-bytes N] [--redis-url redis://HOST:PORT] [--entra-instance URL] [--global-policy FILE] [--operation "METHOD /template=FILE" ...] [--subscription-key ID=KEY ... [--subscription-required]] [--metrics-path PATH|off] [--client-ca-file PEM [--client-cert-mode strict|passthrough]] [--allowed-host NAME ...] [--header-timeout-ms N] [--body-timeout-ms N] [--body-memory-bytes N] [--keep-alive-timeout-ms N] [--upstream-timeout-ms N] [--max-url-bytes N] [--max-backend-connections N]';

/** Positive-integer flags and the gateway option each sets. */
const LIMIT_FLAGS = {
  'header-timeout-ms': 'headerTimeoutMs',
  'body-timeout-ms': 'bodyTimeoutMs',
  'body-memory-bytes': 'bodyMemoryBytes',
  'keep-alive-timeout-ms': 'keepAliveTimeoutMs',
  'upstream-timeout-ms': 'upstreamTimeoutMs',
  'max-url-bytes': 'maxUrlBytes',
  'max-backend-connections': 'maxBackendConnections',
} as const;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface ParsedArgs {
  help: boolean;
  options: Omit<GatewayOptions, 'trustedCaPem' | 'clientCertificates'> & {
    caFile?: string;
    clientCaFile?: string;
    clientCertMode?: 'strict' | 'passthrough';
  };
}

function required(name: string, value: string | undefined): string {
  if (value === undefined || value.trim() === '') throw new UsageError(`--${name} is required`);
  return value;
}

export function parseGatewayArgs(argv: readonly string[]): ParsedArgs {
  let values;
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        'state-dir': { type: 'string' },
        policy: { type: 'string' },
        backend: { type: 'string' },
        'named-value': { type: 'string', multiple: true },
        port: { type: 'string' },
        host: { type: 'string' },
        'ca-file': { type: 'string' },
        'max-body-bytes': { type: 'string' },
        'redis-url': { type: 'string' },
        'client-ca-file': { type: 'string' },
        'entra-instance': { type: 'string' },
        'global-policy': { type: 'string' },
        operation: { type: 'string', multiple: true },
        'subscription-key': { type: 'string', multiple: true },
        'subscription-required': { type: 'boolean', default: false },
        'metrics-path': { type: 'string' },
        'client-cert-mode': { type: 'string' },
        'allowed-host': { type: 'string', multiple: true },
        ...Object.fromEntries(Object.keys(LIMIT_FLAGS).map((flag) => [flag, { type: 'string' as const }])),
        help: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return { help: true, options: { stateDir: '', policyFile: '', backendUrl: '' } };

  const namedValues: Record<string, string> = {};
  for (const pair of values['named-value'] ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--named-value must be NAME=VALUE, got '${pair}'`);
    const name = pair.slice(0, eq).trim();
    if (!/^[A-Za-z0-9._-]+$/.test(name))
      throw new UsageError(`--named-value name '${name}' may contain only letters, digits, '.', '_' and '-'`);
    if (name in namedValues) throw new UsageError(`--named-value ${name} given twice`);
    namedValues[name] = pair.slice(eq + 1);
  }
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!/^\d+$/.test(values.port ?? '0') || port > 65535)
    throw new UsageError(`--port must be a port number 0-65535, got '${values.port}'`);
  const maxBody =
    values['max-body-bytes'] === undefined
      ? DEFAULT_MAX_REQUEST_BODY_BYTES
      : Number(values['max-body-bytes']);
  if (!/^\d+$/.test(values['max-body-bytes'] ?? '0') || !Number.isSafeInteger(maxBody)) {
    throw new UsageError(
      `--max-body-bytes must be a non-negative integer, got '${values['max-body-bytes']}'`,
    );
  }
  const backendUrl = required('backend', values.backend);
  if (!/^http:\/\/[^/]/.test(backendUrl))
    throw new UsageError(`--backend must be an http:// URL, got '${backendUrl}'`);
  if (values.host !== undefined && values.host.trim() === '')
    throw new UsageError('--host must not be empty');
  const redisUrl = values['redis-url'];
  if (redisUrl !== undefined && !/^rediss?:\/\/[^/]/.test(redisUrl))
    throw new UsageError('--redis-url must be a redis:// or rediss:// URL');

  const entraInstance = values['entra-instance'];
  if (entraInstance !== undefined && !/^https:\/\/[^/]/.test(entraInstance))
    throw new UsageError('--entra-instance must be an https:// URL');
  const operations = (values.operation ?? []).map((spec) => {
    const m = /^([A-Za-z*]+) (\/\S*)=(.+)$/.exec(spec);
    if (!m) throw new UsageError(`--operation must be "METHOD /template=FILE", got '${spec}'`);
    return { method: m[1]!, urlTemplate: m[2]!, policyFile: m[3]! };
  });
  const subscriptions = new Map<string, string[]>();
  for (const pair of values['subscription-key'] ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0 || eq === pair.length - 1) throw new UsageError('--subscription-key must be ID=KEY');
    const id = pair.slice(0, eq);
    subscriptions.set(id, [...(subscriptions.get(id) ?? []), pair.slice(eq + 1)]);
  }
  if (values['subscription-required'] && subscriptions.size === 0)
    throw new UsageError('--subscription-required needs at least one --subscription-key');
  const metricsPath = values['metrics-path'];
  if (metricsPath !== undefined && metricsPath !== 'off' && !metricsPath.startsWith('/'))
    throw new UsageError(`--metrics-path must start with / (or be off), got '${metricsPath}'`);
  const clientCertMode = values['client-cert-mode'];
  if (clientCertMode !== undefined && clientCertMode !== 'strict' && clientCertMode !== 'passthrough')
    throw new UsageError(`--client-cert-mode must be strict or passthrough, got '${clientCertMode}'`);
  if (clientCertMode !== undefined && values['client-ca-file'] === undefined)
    throw new UsageError('--client-cert-mode needs --client-ca-file');

  const limits: Partial<Record<(typeof LIMIT_FLAGS)[keyof typeof LIMIT_FLAGS], number>> = {};
  for (const [flag, option] of Object.entries(LIMIT_FLAGS)) {
    const raw = (values as Record<string, unknown>)[flag] as string | undefined;
    if (raw === undefined) continue;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < 1)
      throw new UsageError(`--${flag} must be a positive integer, got '${raw}'`);
    limits[option] = value;
  }
  let allowedHosts: string[] = [];
  try {
    allowedHosts = parseAllowedHosts(values['allowed-host'] ?? []);
  } catch (err) {
    throw new UsageError(`--allowed-host: ${(err as Error).message}`);
  }

  return {
    help: false,
    options: {
      ...limits,
      ...(allowedHosts.length ? { allowedHosts } : {}),
      stateDir: required('state-dir', values['state-dir']),
      policyFile: required('policy', values.policy),
      backendUrl,
      namedValues,
      port,
      maxRequestBodyBytes: maxBody,
      ...(values.host === undefined ? {} : { host: values.host }),
      ...(redisUrl === undefined ? {} : { redisUrl }),
      ...(entraInstance === undefined ? {} : { entraInstance }),
      ...(values['global-policy'] === undefined
        ? {}
        : { globalPolicyFile: required('global-policy', values['global-policy']) }),
      ...(operations.length ? { operations } : {}),
      ...(subscriptions.size
        ? {
            subscriptionKeys: {
              required: values['subscription-required'] === true,
              subscriptions: [...subscriptions].map(([id, keys]) => ({ id, keys })),
            },
          }
        : {}),
      ...(metricsPath === undefined
        ? {}
        : { metricsPath: metricsPath === 'off' ? (false as const) : metricsPath }),
      ...(values['client-ca-file'] === undefined
        ? {}
        : { clientCaFile: required('client-ca-file', values['client-ca-file']) }),
      ...(clientCertMode === undefined ? {} : { clientCertMode }),
      ...(values['ca-file'] === undefined ? {} : { caFile: required('ca-file', values['ca-file']) }),
    },
  };
}

export interface CliIo {
  stdout: (line: string) => void;
  stderr: (line: string) => void;
}

/** Runs the CLI; resolves with an exit code (2 usage, 1 start-up failure) or the running gateway. */
export async function runCli(
  argv: readonly string[],
  io: CliIo,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ exitCode: number; gateway?: RunningGateway }> {
  let parsed: ParsedArgs;
  try {
    parsed = parseGatewayArgs(argv);
  } catch (err) {
    io.stderr(`${(err as Error).message}\n${USAGE}`);
    return { exitCode: 2 };
  }
  if (parsed.help) {
    io.stdout(USAGE);
    return { exitCode: 0 };
  }
  const { caFile, clientCaFile, clientCertMode, ...options } = parsed.options;
  let clientCaPem: string | undefined;
  if (clientCaFile !== undefined) {
    try {
      clientCaPem = readFileSync(clientCaFile, 'utf8');
    } catch (err) {
      io.stderr(`--client-ca-file: cannot read ${clientCaFile}: ${(err as Error).message}`);
      return { exitCode: 2 };
    }
    if (!clientCaPem.includes('-----BEGIN CERTIFICATE-----')) {
      io.stderr(`--client-ca-file: ${clientCaFile} does not contain a PEM certificate`);
      return { exitCode: 2 };
    }
  }
  let trustedCaPem: string | undefined;
  if (caFile !== undefined) {
    try {
      trustedCaPem = readFileSync(caFile, 'utf8');
    } catch (err) {
      io.stderr(`--ca-file: cannot read ${caFile}: ${(err as Error).message}`);
      return { exitCode: 2 };
    }
    if (!trustedCaPem.includes('-----BEGIN CERTIFICATE-----')) {
      io.stderr(`--ca-file: ${caFile} does not contain a PEM certificate`);
      return { exitCode: 2 };
    }
  }
  let clock: EnvironmentClock;
  try {
    clock = clockFromEnvironment(env, { onError: (err) => io.stderr(`local-gateway: ${err.message}`) });
  } catch (err) {
    io.stderr(`local-gateway: ${(err as Error).message}`);
    return { exitCode: 2 };
  }
  const notice = clockNotice(clock);
  if (notice) io.stderr(`local-gateway: ${notice}`);
  // Lines in batches (access-log.ts); io.stdout adds the last newline.
  const log = bufferedAccessLog((chunk) => io.stdout(chunk.slice(0, -1)));
  try {
    const gateway = await startGateway({
      ...options,
      clock,
      ...(trustedCaPem ? { trustedCaPem } : {}),
      ...(clientCaPem
        ? {
            clientCertificates: {
              trustedCaPem: clientCaPem,
              ...(clientCertMode ? { mode: clientCertMode } : {}),
            },
          }
        : {}),
      accessLog: log.sink,
    });
    io.stdout(JSON.stringify({ event: 'listening', url: gateway.url }));
    return {
      exitCode: 0,
      gateway: { ...gateway, close: () => gateway.close().then(() => (clock.close(), log.flush())) },
    };
  } catch (err) {
    clock.close();
    io.stderr(`local-gateway: ${(err as Error).message}`);
    return { exitCode: 1 };
  }
}
