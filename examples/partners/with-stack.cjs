#!/usr/bin/env node
/**
 * `node examples/partners/with-stack.cjs -- <command> [args…]`: runs <command> against a local
 * stack started for it, then stops the stack and exits with the command's exit code.
 *
 * The stack (`npm start`'s, built beforehand: the examples' Nx `test` targets depend on the
 * builds of `stack` and `partner-worker`) runs in a process group of its own on a fresh state
 * directory (mode 0700, removed afterwards). The command runs in the current directory with the
 * environment of the stack's partner `contoso` (the partner worker's names: ENTRA_INSTANCE,
 * PARTNER_TENANT_ID, PARTNER_CLIENT_ID, PARTNER_SCOPE, PARTNER_API_BASE_URL, PARTNER_CERT_DIR,
 * PARTNER_CA_FILE, …), plus, for tests, CERTFLOW_EMULATOR_METRICS_URL: the emulator's /metrics.
 * SIGINT/SIGTERM reach the command; the stack is stopped after it, however it ends.
 *
 * Neither the stack nor the command inherits the caller's settings: every PARTNER_*, ENTRA_*,
 * API_* and CERTFLOW_* variable (the partner worker's, the API's, the stack's and its clock's,
 * e.g. CERTFLOW_CLOCK_OFFSET) and the CA-bundle overrides the examples' HTTP clients read
 * (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, SSL_CERT_FILE, SSL_CERT_DIR, NODE_EXTRA_CA_CERTS) are
 * removed from the environment before the stack starts; the command then gets the stack's values.
 * The command's NO_PROXY and no_proxy get localhost, 127.0.0.1 and ::1 added (the caller's entries
 * kept), so a developer's HTTPS_PROXY/HTTP_PROXY does not send the calls to the local stack away.
 *
 * Plain CommonJS with JSDoc types, no build step: each example's runner starts it as it is.
 */
'use strict';
const { spawn } = require('node:child_process');
const { mkdtempSync, rmSync } = require('node:fs');
const { constants, tmpdir } = require('node:os');
const { join } = require('node:path');

const PARTNER = 'contoso';
const SETTING = /^(PARTNER|ENTRA|API|CERTFLOW)_/;
const CA_BUNDLE_OVERRIDES = [
  'REQUESTS_CA_BUNDLE',
  'CURL_CA_BUNDLE',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'NODE_EXTRA_CA_CERTS',
];

/**
 * @param {string} name an environment variable
 * @returns {boolean} whether it is a setting the stack or the examples read, which the caller must not pass on
 */
function isCallerSetting(name) {
  return SETTING.test(name) || CA_BUNDLE_OVERRIDES.includes(name);
}
const STACK_START_TIMEOUT_MS = 90_000;
const LOCAL_HOSTS = ['localhost', '127.0.0.1', '::1'];

/**
 * @param {string | undefined} value the caller's NO_PROXY (or no_proxy)
 * @returns {string} that list with the local hosts added
 */
function withLocalHosts(value) {
  const entries = (value ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  return [...entries, ...LOCAL_HOSTS.filter((host) => !entries.includes(host))].join(',');
}

/**
 * @param {string[]} argv the arguments after the script
 * @returns {string[] | undefined} the command and its arguments, or undefined when there is none
 */
function commandOf(argv) {
  const args = argv[0] === '--' ? argv.slice(1) : argv;
  return args.length > 0 ? args : undefined;
}

/**
 * @param {string[]} command
 * @param {NodeJS.ProcessEnv} env
 * @param {{ child?: import('node:child_process').ChildProcess }} running where the child is kept, for the signal handlers
 * @returns {Promise<number>} the command's exit code (128 + signal number when a signal ended it; 127 when it could not start)
 */
function runCommand(command, env, running) {
  return new Promise((resolve) => {
    const child = spawn(command[0], command.slice(1), { env, stdio: 'inherit' });
    running.child = child;
    child.on('error', (err) => {
      console.error(`with-stack: cannot run ${command[0]}: ${err.message}`);
      resolve(127);
    });
    child.on('exit', (code, signal) => {
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}

async function main() {
  const command = commandOf(process.argv.slice(2));
  if (!command) {
    console.error('usage: node examples/partners/with-stack.cjs -- <command> [args…]');
    return 2;
  }
  /** @type {typeof import('@certflow/stack')} */
  let stackModule;
  try {
    stackModule = require('@certflow/stack');
  } catch (err) {
    console.error(
      `with-stack: cannot load @certflow/stack (build it: npx nx run stack:build): ${err instanceof Error ? err.message : String(err)}`,
    );
    return 2;
  }
  const { launchStackProcess, stackPartnerEnvironment } = stackModule;

  // The stack's child processes inherit process.env: remove the caller's settings from it first.
  for (const name of Object.keys(process.env)) if (isCallerSetting(name)) delete process.env[name];
  const stateDir = mkdtempSync(join(tmpdir(), 'certflow-partner-example-')); // 0700
  /** @type {Awaited<ReturnType<typeof launchStackProcess>> | undefined} */
  let stack;
  /** @type {{ child?: import('node:child_process').ChildProcess }} */
  const running = {};
  /** @type {NodeJS.Signals | undefined} */
  let signalled;
  /** @param {NodeJS.Signals} signal */
  const onSignal = (signal) => {
    signalled = signal;
    // The command decides how to end; the stack stops once it has (or at once if none runs yet).
    if (running.child && running.child.exitCode === null) running.child.kill(signal);
    else if (stack) process.kill(-stack.pid, 'SIGKILL');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    stack = await launchStackProcess(stateDir, STACK_START_TIMEOUT_MS, [], { ownProcessGroup: true });
    if (signalled) return 128 + constants.signals[signalled];
    const env = {
      ...process.env,
      ...stackPartnerEnvironment(stack.file, PARTNER),
      CERTFLOW_EMULATOR_METRICS_URL: new URL('/metrics', stack.file.emulator.url).href,
      NO_PROXY: withLocalHosts(process.env.NO_PROXY),
      no_proxy: withLocalHosts(process.env.no_proxy),
    };
    return await runCommand(command, env, running);
  } catch (err) {
    console.error(`with-stack: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    await stack?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().then((code) => process.exit(code));
