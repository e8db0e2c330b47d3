import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseCliArgs, runCli, UsageError } from './cli';
import { emulatorInfoPath } from './emulator-info';
import { removeDir, tempStateDir } from './emulator.test-helpers';

describe('parseCliArgs', () => {
  it('reads flags in both --flag value and --flag=value forms, with defaults', () => {
    expect(parseCliArgs([])).toEqual({ port: 0, stateDir: '.certflow', host: '127.0.0.1', help: false });
    expect(parseCliArgs(['--port', '8443', '--state-dir=/tmp/x', '--host', '::1', '--token-lifetime', '600'])).toEqual({
      port: 8443,
      stateDir: '/tmp/x',
      host: '::1',
      tokenLifetimeSeconds: 600,
      help: false,
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
  ])('%j is a usage error naming %s', (argv, flag) => {
    expect(() => parseCliArgs(argv)).toThrow(UsageError);
    expect(() => parseCliArgs(argv)).toThrow(flag);
  });
});

describe('runCli', () => {
  it('exits 2 with usage on a bad flag', async () => {
    const err: string[] = [];
    const code = await runCli(['--port', 'x'], { stdout: () => {}, stderr: (l) => err.push(l), onShutdown: () => {} });
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

  it('exits 1 with the reason when the state is damaged', async () => {
    const dir = tempStateDir();
    try {
      writeFileSync(`${dir}/emulator-state.json`, 'nope');
      const err: string[] = [];
      expect(await runCli(['--state-dir', dir], { stdout: () => {}, stderr: (l) => err.push(l), onShutdown: () => {} })).toBe(1);
      expect(err.join('\n')).toContain('emulator-state.json');
    } finally {
      removeDir(dir);
    }
  });
});
