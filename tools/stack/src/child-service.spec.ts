import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startService } from './child-service';

const dir = mkdtempSync(join(tmpdir(), 'certflow-child-'));
/** A service as the stack runs them: logs on stderr, `listening` on stdout, a last line on SIGTERM. */
const script = join(dir, 'service.js');
const LAST_LINES = 25_000;
writeFileSync(
  script,
  `const LAST_LINES = ${LAST_LINES};
const run = process.argv[2];
const keepAlive = setInterval(() => {}, 1000);
process.once('SIGTERM', () => {
  clearInterval(keepAlive);
  // A last burst of log lines (1 MB) that is still on its way when the process has exited.
  const last = JSON.stringify({ event: 'log', message: 'stopping', run }) + '\\n';
  process.stderr.write(last.repeat(LAST_LINES), () => process.exit(0));
});
process.stderr.write(JSON.stringify({ event: 'log', message: 'starting', run }) + '\\n');
process.stdout.write(JSON.stringify({ event: 'listening', url: 'http://127.0.0.1:1' }) + '\\n');
`,
);

afterEach(() => {
  vi.restoreAllMocks();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const lines = (path: string): { message: string; run: string }[] =>
  readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { message: string; run: string });

describe('startService with a log file', () => {
  it('appends the service stderr to a file of mode 0600, across runs, its last lines included once stop resolves', async () => {
    const log = join(dir, 'service.log');
    for (const run of ['1', '2']) {
      const service = await startService('the demo', script, [run], process.env, { logFile: log });
      await service.stop();
      expect(lines(log)).toHaveLength(Number(run) * (1 + LAST_LINES));
    }
    expect(statSync(log).mode & 0o777).toBe(0o600);
    const written = lines(log);
    expect(written[0]).toEqual({ event: 'log', message: 'starting', run: '1' });
    expect(written[LAST_LINES]).toEqual({ event: 'log', message: 'stopping', run: '1' });
    expect(written[LAST_LINES + 1]).toEqual({ event: 'log', message: 'starting', run: '2' });
    expect(written.at(-1)).toEqual({ event: 'log', message: 'stopping', run: '2' });
  });

  it('runs the service without the file when it cannot be written, and says so once on stderr', async () => {
    const unwritable = join(dir, 'a-directory.log');
    mkdirSync(unwritable);
    const said: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      said.push(String(chunk));
      return true;
    });
    const service = await startService('the demo', script, ['3'], process.env, { logFile: unwritable });
    expect(service.url).toBe('http://127.0.0.1:1');
    await service.stop();
    expect(service.process.exitCode).toBe(0);
    expect(said).toHaveLength(1);
    expect(said[0]).toContain(`the demo's log is not kept: cannot write ${unwritable}`);
  });
});
