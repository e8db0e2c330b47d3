/**
 * Runs a k6 script when k6 is installed. certflow's own runner measures the same thing in
 * every run; k6 is optional, and its absence is reported loudly, never passed over.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export function k6Available(): boolean {
  return spawnSync('k6', ['version'], { stdio: 'ignore' }).status === 0;
}

export function runK6(script: string, env: Record<string, string>, summaryFile: string): boolean {
  const result = spawnSync(
    'k6',
    ['run', '--quiet', '--summary-export', summaryFile, join(__dirname, '..', 'k6', script)],
    {
      stdio: 'inherit',
      env: { ...process.env, ...env },
    },
  );
  return result.status === 0;
}

export function reportK6Missing(scripts: string[]): void {
  const line = '!'.repeat(78);
  console.warn(
    `\n${line}\n!! k6 is not installed: these k6 scripts did NOT run: ${scripts.join(', ')}.\n` +
      `!! certflow's own load runner ran the same suites above. To run the k6 scripts\n` +
      `!! too, put a k6 binary on the PATH and run npm run load.\n${line}\n`,
  );
}
