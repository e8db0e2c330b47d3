import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { AccessLogEntry, bufferedAccessLog, fileAccessLog } from './access-log';
import { tempStateDir } from './test-servers.test-helpers';

const entry = (n: number): AccessLogEntry => ({
  event: 'request',
  time: new Date(0).toISOString(),
  method: 'GET',
  path: `/orders/${n}`,
  status: 200,
  durationMs: 1,
  policy: 'forwarded',
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  spanId: '00f067aa0ba902b7',
});

describe('buffered access log', () => {
  const state = tempStateDir();
  afterAll(() => state.remove());

  it('writes whole lines in batches: after flushMs, at once past 64 KiB, and on flush()', async () => {
    const chunks: string[] = [];
    const log = bufferedAccessLog((chunk) => void chunks.push(chunk), 50);
    log.sink(entry(1));
    log.sink(entry(2));
    expect(chunks).toEqual([]);
    await new Promise((done) => setTimeout(done, 150));
    expect(chunks).toHaveLength(1);
    expect(chunks[0]!.split('\n')).toEqual([JSON.stringify(entry(1)), JSON.stringify(entry(2)), '']);

    // 64 KiB pending: written without waiting for the timer.
    for (let i = 0; i < 1000; i++) log.sink(entry(i));
    await new Promise((done) => setImmediate(done)); // the write runs once earlier writes are done
    expect(chunks.length).toBeGreaterThan(1);
    await log.flush();
    const lines = chunks.slice(1).join('').split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.map((l) => (JSON.parse(l) as AccessLogEntry).path)).toEqual(
      Array.from({ length: 1000 }, (_, i) => `/orders/${i}`),
    );
  });

  it('keeps at most 16 MiB for a stalled output, drops the rest and says how many on stderr', async () => {
    let stalled = true;
    const waiting: Array<() => void> = [];
    const chunks: string[] = [];
    const log = bufferedAccessLog((chunk) => {
      chunks.push(chunk);
      return stalled ? new Promise<void>((done) => waiting.push(done)) : undefined;
    }, 10);
    const big = (n: number): AccessLogEntry => ({ ...entry(n), path: `/${'p'.repeat(1000)}/${n}` });
    for (let i = 0; i < 20_000; i++) log.sink(big(i)); // about 20 MiB while the first write hangs
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      stalled = false; // the output recovers
      for (const done of waiting) done();
      await log.flush();
      const kept = chunks.join('').split('\n').filter(Boolean).length;
      expect(kept).toBeGreaterThan(10_000);
      expect(kept).toBeLessThan(20_000);
      expect(stderr).toHaveBeenCalledWith(
        `local-gateway: access log: ${20_000 - kept} lines dropped: the log output did not keep up\n`,
      );
    } finally {
      stderr.mockRestore();
    }
  });

  it('appends to a file created with mode 0600, and close() writes what is pending', async () => {
    const path = join(state.dir, 'access.log');
    const log = await fileAccessLog(path);
    log.sink(entry(7));
    await log.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, 'utf8')).toBe(`${JSON.stringify(entry(7))}\n`);
    const again = await fileAccessLog(path);
    again.sink(entry(8));
    await again.close();
    expect(readFileSync(path, 'utf8').split('\n')).toHaveLength(3);
  });
});
