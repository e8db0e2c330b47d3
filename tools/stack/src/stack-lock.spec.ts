/**
 * Two real `npm start`s on one state directory: the second stops at once naming the first's pid
 * and changes nothing (the first keeps serving, its stack.json intact); the lock goes when the
 * first stops, and a lock left by a process that is gone is taken over. The first also shows the
 * "Try" hint with a partner that got 2xx on GET /orders (the topology's first partner here has no role).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopChild } from './child-service';
import { STATE_LOCK_FILE } from './state-lock';
import { readStackFile, stackFilePath } from './stack-file';
import { httpsStatus } from './stack.test-helpers';
import { defaultTopologyJson, writeTopology } from './topology.test-helpers';

const dir = mkdtempSync(join(tmpdir(), 'certflow-lock-'));
const main = join(__dirname, '..', 'dist', 'main.js');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const stateDir = join(dir, 'state');
const lockFile = join(stateDir, STATE_LOCK_FILE);
const topology = defaultTopologyJson();
topology.partners.unshift({ name: 'northwind', displayName: 'northwind-partner', roles: {} });
const topologyFile = writeTopology(dir, 'topology.json', topology);

describe('npm start twice on one state directory', () => {
  it('the second stops naming the first; the lock is released on stop and a stale one taken over', async () => {
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
      const described = readFileSync(stackFilePath(stateDir), 'utf8');

      const second = spawnSync(
        process.execPath,
        [main, '--once', '--state-dir', stateDir, '--topology', topologyFile],
        { encoding: 'utf8', timeout: 60_000 },
      );
      expect(second.status, second.stdout + second.stderr).toBe(1);
      expect(second.stderr).toContain(
        `Not started, nothing changed: another stack (pid ${first.pid}) is running on the state directory ${stateDir}`,
      );
      expect(second.stdout).not.toMatch(/Step 1/);
      expect(readFileSync(stackFilePath(stateDir), 'utf8')).toBe(described);
      expect(readFileSync(lockFile, 'utf8')).toBe(`${first.pid}\n`);
      const file = readStackFile(stateDir);
      expect(await httpsStatus(file.gateway.healthUrl, readFileSync(file.caCertificatePath))).toBe(200);
    } finally {
      await stopChild(first);
    }
    expect(first.exitCode, output).toBe(0);
    expect(existsSync(lockFile)).toBe(false);
    expect(existsSync(stackFilePath(stateDir))).toBe(false);

    // A stack killed without stopping leaves its lock: the next start takes it over. (Here no
    // partner holds a role, and the summary does not claim an authenticated 2xx.)
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(lockFile, `${gone}\n`);
    for (const p of topology.partners) p.roles = {};
    const noRoles = writeTopology(dir, 'no-roles.json', topology);
    const third = spawnSync(
      process.execPath,
      [main, '--once', '--state-dir', stateDir, '--topology', noRoles],
      {
        encoding: 'utf8',
        timeout: 90_000,
      },
    );
    expect(third.status, third.stdout + third.stderr).toBe(0);
    expect(third.stdout).toContain(
      'No partner is granted these calls: each got the 403 the topology calls for.',
    );
    expect(existsSync(lockFile)).toBe(false);
  }, 240_000);
});
