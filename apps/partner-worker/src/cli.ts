/**
 * The partner worker's command line. `runCli` does all the work and returns the exit code,
 * so that tests run it in-process; main.ts only wires it to the real process. Each command lives
 * in commands/ with its options, its usage lines and its help.
 *
 * With --json, stdout carries one JSON object per line (docs/architecture.md):
 *   {"event":"assertion","header":{…},"claims":{…}}   each client assertion sent (no signature)
 *   {"event":"token","source":"network"|"cache","claims":{…},"expiresOn":"…"}
 *   {"event":"response","status":200,"body":…,"traceId":…,"spanId":…}
 * and `cert create|show --json` print one {"event":"certificate",…} object.
 * Errors go to stderr. Exit codes: 0 success, 1 failure, 2 usage error.
 */
import { parseArgs } from 'node:util';
import { clockFromEnvironment, clockNotice, type EnvironmentClock } from '@certflow/clock';
import { DEFAULT_COMMON_NAME, DEFAULT_VALIDITY_DAYS, MAX_VALIDITY_DAYS } from '@certflow/partner-client';
import { call } from './commands/call';
import { certCreate, certCsr, certExport, certImport, certReencrypt, certShow } from './commands/cert';
import { certRotate } from './commands/cert-rotate';
import {
  UsageError,
  type CliIo,
  type Command,
  type Emit,
  type Options,
  type Values,
} from './commands/command';
import { run } from './commands/run';
import { serve } from './commands/serve';
import { tokenDecode, tokenGet } from './commands/token';

export { UsageError, type CliIo } from './commands/command';

/** Every command, in the order of the usage text. */
const COMMANDS: readonly Command[] = [
  certCreate,
  certShow,
  certExport,
  certImport,
  certRotate,
  certCsr,
  certReencrypt,
  tokenGet,
  tokenDecode,
  call,
  serve,
  run,
];

export const USAGE = `Usage: partner-worker <command> [options]

Commands:
${COMMANDS.map((c) => c.usage).join('\n')}
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
  PARTNER_NEW_KEY_PASSPHRASE  the passphrase cert reencrypt changes to
  PARTNER_KEY_STORE     make new keys inside a PKCS#11 token: pkcs11:token=…;object=… (RFC 7512)
  PARTNER_PKCS11_MODULE the PKCS#11 module (.so), unless the URI has module-path
  PARTNER_PKCS11_PIN    the token's user PIN, unless the URI has pin-source=file:…
  PARTNER_CERT_EXPIRY_WARNING_DAYS  warn when fewer days are left (default 30)
  PARTNER_PFX_PASSWORD  password for cert export --format pfx and cert import --pfx
  PARTNER_IMPORT_KEY_PASSPHRASE  passphrase of an encrypted key given to cert import --key
  PARTNER_APP_OBJECT_ID the partner application's object id (cert rotate; serve's POST /rotate)
  PARTNER_GRAPH_URL     Graph base URL (default https://graph.microsoft.com/v1.0)
  PARTNER_REDIS_URL     redis://… : replicas share one token (optional)
  PARTNER_TOKEN_STORE   where replicas share tokens: redis (default with PARTNER_REDIS_URL) or memory
  PARTNER_CACHE_KEY     32 random bytes (base64 or hex): encrypts tokens in Redis (with PARTNER_REDIS_URL)
  PARTNER_ALLOWED_HOSTS more --allowed-host names, comma-separated (serve, run --metrics-port)
  CERTFLOW_CLOCK_OFFSET for tests: judge certificates and tokens by a shifted clock, e.g. +2h
  CERTFLOW_CLOCK_FILE   for tests: a clock file to follow (npm start -- --clock-offset writes one)

serve and run pick up a certificate rotated by another process (files in PARTNER_CERT_DIR)
without a restart; SIGTERM or SIGINT stops them gracefully.

Exit status: 0 success, 1 failure, 2 usage error.`;

/** Every command's options together: parsed once, then each command accepts only its own. */
const OPTIONS: Options = Object.assign({}, ...COMMANDS.map((c) => c.options), {
  help: { type: 'boolean', short: 'h', default: false },
});

function find(words: string[]): Command | undefined {
  const [group, sub] = words;
  if (group === undefined) return undefined;
  return (
    COMMANDS.find((c) => c.name === group) ?? COMMANDS.find((c) => c.name === `${group} ${sub ?? ''}`.trim())
  );
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let values: Record<string, string | boolean | string[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: OPTIONS,
      allowPositionals: true,
      strict: true,
    }));
  } catch (err) {
    io.stderr(`partner-worker: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values['help'] || positionals[0] === 'help') {
    const words = positionals[0] === 'help' ? positionals.slice(1) : positionals;
    io.stdout(find(words)?.help ?? USAGE);
    return 0;
  }

  let clock: EnvironmentClock | undefined;
  try {
    const command = find(positionals);
    if (!command)
      throw new UsageError(
        positionals[0] === undefined ? 'a command is required' : `unknown command "${positionals.join(' ')}"`,
      );
    for (const [flag, v] of Object.entries(values)) {
      const given = typeof v === 'boolean' ? v : v !== undefined;
      if (given && flag !== 'help' && !Object.hasOwn(command.options, flag))
        throw new UsageError(`${command.name} does not take --${flag}`);
    }
    const named = command.name.split(' ').length;
    const args = positionals.slice(named, named + (command.args ?? 0));
    const extra = positionals.slice(named + (command.args ?? 0));
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
    const emit: Emit = (event) => io.stdout(JSON.stringify(event));
    // Certificate validity, assertions, token expiry and refresh follow it; a bad variable stops here.
    clock = clockFromEnvironment(io.env, { onError: (err) => io.stderr(`partner-worker: ${err.message}`) });
    const notice = clockNotice(clock);
    if (notice) io.stderr(`partner-worker: ${notice}`);
    return await command.run({ io, values: values as unknown as Values<Options>, args, emit, clock });
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`partner-worker: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    io.stderr(`partner-worker: error: ${(err as Error).message}`);
    return 1;
  } finally {
    clock?.close();
  }
}
