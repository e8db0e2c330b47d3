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
 *
 * Prints `{"event":"listening","url":"https://localhost:P"}` on stdout once listening, then one
 * access-log line per request. A bad flag is a usage error naming the flag: exit code 2.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_MAX_REQUEST_BODY_BYTES, GatewayOptions, RunningGateway, startGateway } from './gateway';

export const USAGE =
  'usage: node tools/local-gateway/dist/main.js --state-dir DIR --policy FILE --backend URL [--named-value NAME=VALUE ...] [--port P] [--host H] [--ca-file PEM] [--max-body-bytes N] [--redis-url redis://HOST:PORT]';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface ParsedArgs {
  help: boolean;
  options: Omit<GatewayOptions, 'trustedCaPem'> & { caFile?: string };
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
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new UsageError(`--named-value name '${name}' may contain only letters, digits, '.', '_' and '-'`);
    if (name in namedValues) throw new UsageError(`--named-value ${name} given twice`);
    namedValues[name] = pair.slice(eq + 1);
  }
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!/^\d+$/.test(values.port ?? '0') || port > 65535) throw new UsageError(`--port must be a port number 0-65535, got '${values.port}'`);
  const maxBody = values['max-body-bytes'] === undefined ? DEFAULT_MAX_REQUEST_BODY_BYTES : Number(values['max-body-bytes']);
  if (!/^\d+$/.test(values['max-body-bytes'] ?? '0') || !Number.isSafeInteger(maxBody)) {
    throw new UsageError(`--max-body-bytes must be a non-negative integer, got '${values['max-body-bytes']}'`);
  }
  const backendUrl = required('backend', values.backend);
  if (!/^http:\/\/[^/]/.test(backendUrl)) throw new UsageError(`--backend must be an http:// URL, got '${backendUrl}'`);
  if (values.host !== undefined && values.host.trim() === '') throw new UsageError('--host must not be empty');
  const redisUrl = values['redis-url'];
  if (redisUrl !== undefined && !/^rediss?:\/\/[^/]/.test(redisUrl)) throw new UsageError('--redis-url must be a redis:// or rediss:// URL');

  return {
    help: false,
    options: {
      stateDir: required('state-dir', values['state-dir']),
      policyFile: required('policy', values.policy),
      backendUrl,
      namedValues,
      port,
      maxRequestBodyBytes: maxBody,
      ...(values.host === undefined ? {} : { host: values.host }),
      ...(redisUrl === undefined ? {} : { redisUrl }),
      ...(values['ca-file'] === undefined ? {} : { caFile: required('ca-file', values['ca-file']) }),
    },
  };
}

export interface CliIo {
  stdout: (line: string) => void;
  stderr: (line: string) => void;
}

/** Runs the CLI; resolves with an exit code (2 usage, 1 start-up failure) or the running gateway. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<{ exitCode: number; gateway?: RunningGateway }> {
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
  const { caFile, ...options } = parsed.options;
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
  try {
    const gateway = await startGateway({
      ...options,
      ...(trustedCaPem ? { trustedCaPem } : {}),
      accessLog: (entry) => io.stdout(JSON.stringify(entry)),
    });
    io.stdout(JSON.stringify({ event: 'listening', url: gateway.url }));
    return { exitCode: 0, gateway };
  } catch (err) {
    io.stderr(`local-gateway: ${(err as Error).message}`);
    return { exitCode: 1 };
  }
}
