/** The rotation lock against real processes: a live owner refuses, a dead one (or a reused pid) is taken over. */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, existsSync, utimesSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '@certflow/testing';
import {
  acquireRotationLock,
  processStartTime,
  RotationLockError,
  ROTATION_LOCK_FILE,
} from './rotation-lock';

const dir = tempDir('rotation-lock-');
afterAll(() => dir.remove());

/** A directory of its own for each test. */
let n = 0;
function fresh(): string {
  const path = join(dir.path, `d${++n}`);
  spawnSync('mkdir', [path]);
  return path;
}

function errorOf(fn: () => unknown): RotationLockError {
  try {
    fn();
  } catch (err) {
    if (err instanceof RotationLockError) return err;
    throw err;
  }
  throw new Error('expected a RotationLockError');
}

/** The pid of a process that ran and is gone. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(child.stdout.toString());
}

describe('rotation lock', () => {
  it('holds the pid and start time, refuses a second rotation naming the pid, and is gone once released', () => {
    const d = fresh();
    const lock = acquireRotationLock(d);
    const content = JSON.parse(readFileSync(join(d, ROTATION_LOCK_FILE), 'utf8')) as {
      pid: number;
      startedAt: string;
    };
    expect(content.pid).toBe(process.pid);
    expect(Math.abs(Date.parse(content.startedAt) - (processStartTime(process.pid) ?? 0))).toBeLessThan(
      2_000,
    );
    expect(statSync(join(d, ROTATION_LOCK_FILE)).mode & 0o777).toBe(0o600);
    expect(errorOf(() => acquireRotationLock(d))).toMatchObject({ pid: process.pid });
    lock.release();
    lock.release();
    expect(existsSync(join(d, ROTATION_LOCK_FILE))).toBe(false);
    acquireRotationLock(d).release();
  });

  it('refuses while another live process holds it, naming its pid, and changes nothing', async () => {
    const d = fresh();
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    try {
      await new Promise((r) => child.once('spawn', r));
      const text = `${JSON.stringify({ pid: child.pid, startedAt: new Date(processStartTime(child.pid!)!).toISOString() })}\n`;
      writeFileSync(join(d, ROTATION_LOCK_FILE), text);
      const err = errorOf(() => acquireRotationLock(d));
      expect(err.pid).toBe(child.pid);
      expect(err.message).toMatch(
        new RegExp(`a rotation by process ${child.pid} is under way.*nothing was changed`),
      );
      expect(readFileSync(join(d, ROTATION_LOCK_FILE), 'utf8')).toBe(text);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('takes over the lock of a process that is gone, and says so', () => {
    const d = fresh();
    const pid = deadPid();
    writeFileSync(join(d, ROTATION_LOCK_FILE), JSON.stringify({ pid, startedAt: new Date().toISOString() }));
    const logs: string[] = [];
    const lock = acquireRotationLock(d, (m) => logs.push(m));
    expect(logs.join('\n')).toMatch(
      new RegExp(`took over the rotation lock of process ${pid}, which is gone`),
    );
    expect(JSON.parse(readFileSync(join(d, ROTATION_LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid });
    expect(existsSync(join(d, `${ROTATION_LOCK_FILE}.${pid}`))).toBe(false);
    lock.release();
  });

  it('a live pid with another start time is a reused pid: the lock is stale', () => {
    const d = fresh();
    // This test process's pid, as if an earlier process with the same pid had taken the lock.
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    try {
      writeFileSync(
        join(d, ROTATION_LOCK_FILE),
        JSON.stringify({ pid: other.pid, startedAt: new Date(Date.now() - 3_600_000).toISOString() }),
      );
      acquireRotationLock(d).release();
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('an empty lock of a writer that died as it started is taken over; one that is not a lock stops, unchanged', () => {
    const d = fresh();
    const path = join(d, ROTATION_LOCK_FILE);
    writeFileSync(path, '');
    utimesSync(path, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    acquireRotationLock(d).release();
    writeFileSync(path, 'not a lock');
    expect(errorOf(() => acquireRotationLock(d)).message).toMatch(
      /does not hold a pid and a start time.*delete it/,
    );
    expect(readFileSync(path, 'utf8')).toBe('not a lock');
  });
});
