import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { readClockFile } from '@certflow/clock';
import { clockFilePath } from './clock-route';
import { parseCliArgs, runCli, UsageError } from './cli';
import { emulatorInfoPath, readEmulatorInfoIfPresent } from './emulator-info';
import { https, postForm, removeDir, tempStateDir } from './emulator.test-helpers';
import { LOCK_FILE } from './state-dir-lock';

describe('parseCliArgs', () => {
  it('reads flags in both --flag value and --flag=value forms, with defaults', () => {
    expect(parseCliArgs([])).toEqual({
      port: 0,
      stateDir: '.certflow',
      host: '127.0.0.1',
      allowedHosts: [],
      faults: {},
      help: false,
    });
    expect(
      parseCliArgs(['--port', '8443', '--state-dir=/tmp/x', '--host', '::1', '--token-lifetime', '600']),
    ).toEqual({
      port: 8443,
      stateDir: '/tmp/x',
      host: '::1',
      tokenLifetimeSeconds: 600,
      allowedHosts: [],
      faults: {},
      help: false,
    });
  });

  it('reads --clock-skew and --strict-jti', () => {
    expect(parseCliArgs(['--clock-skew', '5', '--strict-jti'])).toMatchObject({
      clockSkewSeconds: 5,
      strictJti: true,
    });
    expect(() => parseCliArgs(['--clock-skew', '601'])).toThrow(
      /--clock-skew must be an integer from 0 to 600/,
    );
  });

  it('reads --clock-offset, negative offsets included', () => {
    expect(parseCliArgs(['--clock-offset', '+2h']).clockOffsetMs).toBe(7_200_000);
    expect(parseCliArgs(['--clock-offset', '-90s']).clockOffsetMs).toBe(-90_000);
    expect(parseCliArgs(['--clock-offset=1d12h']).clockOffsetMs).toBe(36 * 3_600_000);
    expect(parseCliArgs(['--clock-offset', '0']).clockOffsetMs).toBe(0);
    expect(parseCliArgs([]).clockOffsetMs).toBeUndefined();
  });

  it('reads the fault-injection flags', () => {
    const argv = [
      '--fault-latency',
      '25',
      '--fault-throttle=0.5',
      '--fault-server-error',
      '1',
      '--fault-server-error-status',
      '503',
      '--fault-retry-after',
      '7',
      '--fault-outage',
      'drop',
    ];
    expect(parseCliArgs(argv).faults).toEqual({
      latencyMs: 25,
      throttleShare: 0.5,
      serverErrorShare: 1,
      serverErrorStatus: 503,
      retryAfterSeconds: 7,
      outage: 'drop',
    });
  });

  it.each([
    [['--port', 'abc'], '--port'],
    [['--port', '70000'], '--port'],
    [['--port'], '--port'],
    [['--state-dir', '--port', '1'], '--state-dir'],
    [['--bogus'], '--bogus'],
    [['stray'], 'stray'],
    [['--token-lifetime', '0'], '--token-lifetime'],
    [['--fault-throttle', '1.5'], '--fault-throttle'],
    [['--fault-server-error', '-0.1'], '--fault-server-error'],
    [['--fault-server-error-status', '501'], '--fault-server-error-status'],
    [['--fault-outage', 'sometimes'], '--fault-outage'],
    [['--clock-offset', '2 hours'], '--clock-offset "2 hours" is not a clock offset'],
    [['--clock-offset', '3651d'], '--clock-offset "3651d" is more than 3650 days'],
    [['--clock-offset'], '--clock-offset needs a value'],
  ])('%j is a usage error naming %s', (argv, flag) => {
    expect(() => parseCliArgs(argv)).toThrow(UsageError);
    expect(() => parseCliArgs(argv)).toThrow(flag);
  });
});

describe('runCli', () => {
  it('exits 2 with usage on a bad flag', async () => {
    const err: string[] = [];
    const code = await runCli(['--port', 'x'], {
      stdout: () => {},
      stderr: (l) => err.push(l),
      onShutdown: () => {},
    });
    expect(code).toBe(2);
    expect(err.join('\n')).toContain('--port');
    expect(err.join('\n')).toContain('usage:');
  });

  it('prints one listening line, then stops cleanly on the shutdown signal', async () => {
    const dir = tempStateDir();
    try {
      const out: string[] = [];
      let stop: () => void = () => {};
      const running = runCli(['--state-dir', dir, '--port', '0'], {
        stdout: (l) => out.push(l),
        stderr: (l) => out.push(`stderr: ${l}`),
        onShutdown: (s) => (stop = s),
      });
      await expect.poll(() => out.length, { timeout: 20_000 }).toBe(1);
      const line = JSON.parse(out[0]!);
      expect(line).toEqual({ event: 'listening', url: expect.stringMatching(/^https:\/\/localhost:\d+$/) });
      expect(JSON.parse(readFileSync(emulatorInfoPath(dir), 'utf8')).url).toBe(line.url);
      stop();
      expect(await running).toBe(0);
      expect(out).toHaveLength(1);
    } finally {
      removeDir(dir);
    }
  });

  it('starts shifted with --clock-offset, keeping the offset in <state-dir>/clock.json; a start without it removes the file', async () => {
    const dir = tempStateDir();
    try {
      const run = (argv: string[]) => {
        const out: string[] = [];
        let stop: () => void = () => {};
        const exit = runCli(['--state-dir', dir, ...argv], {
          stdout: (l) => out.push(l),
          stderr: (l) => out.push(`stderr: ${l}`),
          onShutdown: (s) => (stop = s),
        });
        return { out, exit, stop: () => stop() };
      };
      const shifted = run(['--clock-offset', '+2h']);
      await expect
        .poll(() => shifted.out.some((l) => l.includes('listening')), { timeout: 20_000 })
        .toBe(true);
      expect(shifted.out[0]).toMatch(
        /^stderr: entra-emulator: clock shifted by \+2h \(now .+\), kept in .+clock\.json$/,
      );
      expect(readClockFile(clockFilePath(dir))).toBe(7_200_000);
      shifted.stop();
      expect(await shifted.exit).toBe(0);

      const plain = run([]);
      await expect.poll(() => plain.out.some((l) => l.includes('listening')), { timeout: 20_000 }).toBe(true);
      expect(plain.out[0]).toBe(
        'stderr: entra-emulator: clock: removed the clock file of an earlier run (offset +2h); the clock is the real time',
      );
      expect(existsSync(clockFilePath(dir))).toBe(false);
      plain.stop();
      expect(await plain.exit).toBe(0);
    } finally {
      removeDir(dir);
    }
  });

  it('exits 1 with the reason when the state is damaged', async () => {
    const dir = tempStateDir();
    try {
      writeFileSync(`${dir}/emulator-state.json`, 'nope');
      const err: string[] = [];
      expect(
        await runCli(['--state-dir', dir], {
          stdout: () => {},
          stderr: (l) => err.push(l),
          onShutdown: () => {},
        }),
      ).toBe(1);
      expect(err.join('\n')).toContain('emulator-state.json');
    } finally {
      removeDir(dir);
    }
  });
});

/** The built program (the test target builds first), as `npm run emulator` runs it. */
const MAIN = join(__dirname, '..', 'dist', 'main.js');

function program(argv: string[]) {
  const child = spawn(process.execPath, [MAIN, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exit = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return { child, exit, out: () => stdout, err: () => stderr };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return port;
}

const refusesConnections = (port: number) =>
  new Promise<boolean>((done) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), done(false)));
    socket.once('error', () => done(true));
  });

describe('the program (dist/main.js)', () => {
  it('a clock.json that is not a file stops the start: exit 1 naming it, nothing left listening, the lock freed', async () => {
    const dir = tempStateDir();
    try {
      mkdirSync(clockFilePath(dir));
      const port = await freePort();
      const run = program(['--state-dir', dir, '--port', String(port)]);
      const code = await Promise.race([
        run.exit,
        new Promise<string>((done) => setTimeout(() => done('still running after 20 s'), 20_000)),
      ]);
      if (code === 'still running after 20 s') run.child.kill('SIGKILL');
      expect(code, run.err()).toBe(1);
      expect(run.err()).toContain(`entra-emulator: could not start: ${clockFilePath(dir)} is not a file`);
      expect(run.out()).toBe('');
      expect(await refusesConnections(port)).toBe(true);
      expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
      expect(existsSync(clockFilePath(dir))).toBe(true); // left alone
    } finally {
      removeDir(dir);
    }
  }, 30_000);

  it('started at +2h, the clock moved back with DELETE /admin/clock: the admin still gets a token, and again after a restart at -2h', async () => {
    const dir = tempStateDir();
    const adminToken = async () => {
      const info = readEmulatorInfoIfPresent(dir)!;
      return postForm(info, {
        grant_type: 'client_credentials',
        client_id: info.admin.clientId,
        client_secret: info.admin.clientSecret,
        scope: 'https://graph.microsoft.com/.default',
      });
    };
    const started = async (argv: string[]) => {
      const run = program(['--state-dir', dir, ...argv]);
      await expect
        .poll(() => run.out().includes('listening') || run.child.exitCode !== null, { timeout: 20_000 })
        .toBe(true);
      expect(run.out(), run.err()).toContain('listening');
      return run;
    };
    try {
      const shifted = await started(['--clock-offset', '+2h']);
      try {
        const first = await adminToken();
        expect(first.status, first.text).toBe(200);
        const info = readEmulatorInfoIfPresent(dir)!;
        const moved = await https(info, `${info.url}/admin/clock`, {
          method: 'DELETE',
          headers: { authorization: `Bearer ${String(first.json().access_token)}` },
        });
        expect(moved.status, moved.text).toBe(200);
        expect(moved.json()).toMatchObject({ offsetMs: 0 });
        const after = await adminToken();
        expect(after.status, after.text).toBe(200);
      } finally {
        shifted.child.kill('SIGTERM');
        expect(await shifted.exit).toBe(0);
      }
      // The same secret is reused by a start the other way, and still works there.
      const secret = readEmulatorInfoIfPresent(dir)!.admin.clientSecret;
      const behind = await started(['--clock-offset', '-2h']);
      try {
        expect(readEmulatorInfoIfPresent(dir)!.admin.clientSecret).toBe(secret);
        const res = await adminToken();
        expect(res.status, res.text).toBe(200);
      } finally {
        behind.child.kill('SIGTERM');
        expect(await behind.exit).toBe(0);
      }
    } finally {
      removeDir(dir);
    }
  }, 60_000);
});
