/**
 * `node load/dist/k6-harness/main.js run [--quiet] [-e KEY=VALUE]... script.js`: certflow's
 * stand-in for `k6 run` where k6 cannot be installed. It is NOT k6 and says so; it implements
 * only the k6 API listed in load/k6/README.md and fails clearly on anything else.
 */
import { EXIT, runScript } from './engine';
import { HARNESS_VERSION } from './protocol';

const USAGE = 'usage: node load/dist/k6-harness/main.js run [--quiet] [-e KEY=VALUE]... SCRIPT.js';

export function banner(script: string): string {
  const line = '#'.repeat(78);
  return [
    line,
    `## ${HARNESS_VERSION}`,
    "## This is certflow's k6 HARNESS, NOT k6: it runs the k6 script below with the small",
    '## part of the k6 API it implements (load/k6/README.md). Its figures are not k6 figures.',
    `## script: ${script}`,
    line,
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'version') {
    console.log(HARNESS_VERSION);
    return 0;
  }
  if (argv[0] !== 'run') {
    console.error(USAGE);
    return 2;
  }
  let script: string | undefined;
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quiet' || arg === '-q') continue;
    if (arg === '-e' || arg === '--env') {
      const pair = argv[++i] ?? '';
      const eq = pair.indexOf('=');
      if (eq < 1) {
        console.error(`${arg} needs KEY=VALUE, got '${pair}'\n${USAGE}`);
        return 2;
      }
      process.env[pair.slice(0, eq)] = pair.slice(eq + 1);
      continue;
    }
    if (arg.startsWith('-') || script) {
      console.error(
        `unexpected argument '${arg}' (the harness implements only what the runner needs)\n${USAGE}`,
      );
      return 2;
    }
    script = arg;
  }
  if (!script) {
    console.error(USAGE);
    return 2;
  }
  console.log(banner(script));
  // Should the run end without settling (a worker gone without an answer), it is not a pass.
  process.exitCode = EXIT.scriptException;
  try {
    return await runScript(script, (l) => console.log(l));
  } catch (err) {
    console.error(`script error: ${(err as Error).message}`);
    return EXIT.scriptException;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    console.log(`${HARNESS_VERSION}: exit ${code}`);
    process.exit(code);
  });
}
