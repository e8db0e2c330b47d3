/**
 * One stack per state directory, held by the lock its emulator takes (`emulator.lock`) before
 * anything in the directory is read or changed. Real `npm start`s: a second start on the
 * directory stops at once naming the first's pid and changes nothing (the first keeps serving,
 * its stack.json intact); a stack killed with SIGKILL leaves its lock, and the next start takes
 * it over; anything at the lock's name that is not a file holding a pid stops the start naming
 * it. The first also shows the "Try" hint with a partner that got 2xx on GET /orders (the
 * topology's first partner here has no role).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOCK_FILE } from '@certflow/entra-emulator';
import { stopChild } from './child-service';
import { readStackFile, stackFilePath } from './stack-file';
import { httpsStatus } from './stack.test-helpers';
import { defaultTopologyJson, writeTopology } from './topology.test-helpers';

const dir = mkdtempSync(join(tmpdir(), 'certflow-lock-'));
const main = join(__dirname, '..', 'dist', 'main.js');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const topology = defaultTopologyJson();
topology.partners.unshift({ name: 'northwind', displayName: 'northwind-partner', roles: {} });
const topologyFile = writeTopology(dir, 'topology.json', topology);

/** Every file under `root` with its content (directories as `<dir>`), to show that nothing changed. */
function snapshot(root: string): Record<string, string> {
  const entries = readdirSync(root, { recursive: true, withFileTypes: true });
  return Object.fromEntries(
    entries.map((e) => {
      const path = join(e.parentPath, e.name);
      return [path, e.isFile() ? readFileSync(path, 'latin1') : `<${e.isDirectory() ? 'dir' : 'other'}>`];
    }),
  );
}

const startOnce = (stateDir: string, topologyPath = topologyFile) =>
  spawnSync(process.execPath, [main, '--once', '--state-dir', stateDir, '--topology', topologyPath], {
    encoding: 'utf8',
    timeout: 90_000,
  });

describe('npm start twice on one state directory', () => {
  it('the second stops naming the first and changes nothing; a lock left by SIGKILL is taken over', async () => {
    const stateDir = join(dir, 'state');
    const lockFile = join(stateDir, LOCK_FILE);
    const first = spawn(process.execPath, [main, '--state-dir', stateDir, '--topology', topologyFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    first.stdout.on('data', (d) => (output += d));
    first.stderr.on('data', (d) => (output += d));
    try {
      const deadline = Date.now() + 90_000;
      while (!output.includes('Running.')) {
        if (first.exitCode !== null) throw new Error(`the first start exited ${first.exitCode}:\n${output}`);
        if (Date.now() > deadline) throw new Error(`the first start did not come up:\n${output}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(output).toMatch(/^Running\. Try: npm run partner -- --as contoso call \/orders /m);
      expect(readFileSync(lockFile, 'utf8')).toBe(`${first.pid}\n`);
      const before = snapshot(stateDir);

      const second = startOnce(stateDir);
      expect(second.status, second.stdout + second.stderr).toBe(1);
      expect(second.stderr).toContain(
        `Not started: an emulator of process ${first.pid} is running on the state directory ${stateDir}`,
      );
      expect(second.stdout).not.toMatch(/Step 1/);
      // The running stack's files (stack.json, emulator.json, the lock, keys) are as they were;
      // only its own logs may have grown meanwhile.
      const after = snapshot(stateDir);
      for (const log of ['api.log', 'gateway-access.log']) {
        delete before[join(stateDir, log)];
        delete after[join(stateDir, log)];
      }
      expect(after).toEqual(before);
      const file = readStackFile(stateDir);
      expect(await httpsStatus(file.gateway.healthUrl, readFileSync(file.caCertificatePath))).toBe(200);

      // Killed outright, the stack leaves its lock (and its stack.json) behind.
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));
      expect(readFileSync(lockFile, 'utf8')).toBe(`${first.pid}\n`);
    } finally {
      await stopChild(first);
    }

    // The next start takes the lock over. (Here no partner holds a role, and the summary does
    // not claim an authenticated 2xx.)
    const noRoles = structuredClone(topology);
    for (const p of noRoles.partners) p.roles = {};
    const third = startOnce(stateDir, writeTopology(dir, 'no-roles.json', noRoles));
    expect(third.status, third.stdout + third.stderr).toBe(0);
    expect(third.stdout).toContain(
      'No partner is granted these calls: each got the 403 the topology calls for.',
    );
    expect(existsSync(lockFile)).toBe(false);
    expect(existsSync(stackFilePath(stateDir))).toBe(false);
  }, 240_000);

  it('stops naming the lock, changing nothing, when it is a directory or a symbolic link', () => {
    const cases: [string, (path: string) => void, string][] = [
      ['a directory', (path) => mkdirSync(path), 'is a directory'],
      [
        'a dangling symbolic link',
        (path) => symlinkSync('/srv/nowhere/emulator.lock', path),
        'is a symbolic link',
      ],
    ];
    for (const [what, make, problem] of cases) {
      const stateDir = mkdtempSync(join(dir, 'odd-lock-'));
      const lockFile = join(stateDir, LOCK_FILE);
      make(lockFile);
      const before = snapshot(stateDir);
      const run = startOnce(stateDir);
      expect(run.status, `${what}: ${run.stdout}${run.stderr}`).toBe(1);
      expect(run.stderr, what).toContain(`Not started: ${lockFile} ${problem}`);
      expect(run.stderr, what).toContain(`If no emulator runs on ${stateDir}, delete it and start again.`);
      expect(snapshot(stateDir), what).toEqual(before);
    }
  }, 60_000);
});
