import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CLOCK_FILE_MAX_BYTES,
  isSystemClock,
  OffsetClock,
  readClockFile,
  systemClock,
  writeClockFile,
} from './clock.js';
import { catchError, emitLibrary } from './clock.test-helpers.js';
import {
  CLOCK_FILE_POLL_MS,
  clockFromEnvironment,
  clockNotice,
  type EnvironmentClock,
} from './environment.js';
import type { ClockError } from './offset.js';

const H = 3_600_000;
const dir = mkdtempSync(join(tmpdir(), 'certflow-clock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(dir, `clock-${(n += 1)}.json`);

// Each puts in the file's place something a plain read would block on or read without end.
const hostile: [string, string, (file: string) => void][] = [
  ['a FIFO', 'is not a regular file', (file) => execFileSync('mkfifo', [file])],
  ['a link to /dev/zero', 'is a symbolic link, not a file', (file) => symlinkSync('/dev/zero', file)],
  [
    'a file over the size limit',
    `is larger than ${CLOCK_FILE_MAX_BYTES} bytes`,
    (file) => writeFileSync(file, `{"offsetMs": 0${' '.repeat(CLOCK_FILE_MAX_BYTES)}}`),
  ],
];

describe('clock files', () => {
  it('are written with mode 0600, read back, and leave no temporary file', () => {
    const file = fresh();
    writeClockFile(file, 2 * H);
    writeClockFile(file, -90_000);
    expect(readClockFile(file)).toBe(-90_000);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const content = JSON.parse(readFileSync(file, 'utf8'));
    expect(content.offsetMs).toBe(-90_000);
    expect(Math.abs(Date.parse(content.setAt) - Date.now())).toBeLessThan(5000);
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses to write a bad offset or where it cannot, changing nothing', () => {
    const file = fresh();
    writeClockFile(file, H);
    expect(catchError(() => writeClockFile(file, 1.5)).code).toBe('ERR_CLOCK_OFFSET');
    const err = catchError(() => writeClockFile(join(dir, 'missing', 'clock.json'), H));
    expect(err.code).toBe('ERR_CLOCK_FILE');
    expect(err.message).toContain(join(dir, 'missing', 'clock.json'));
    expect(readClockFile(file)).toBe(H);
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it.each([
    ['', 'is not JSON'],
    ['{"offsetMs": 1', 'is not JSON'],
    ['[]', 'has no "offsetMs"'],
    ['null', 'has no "offsetMs"'],
    ['{"setAt":"x"}', 'has no "offsetMs"'],
    ['{"offsetMs":"2h"}', '"offsetMs" is not a number'],
    ['{"offsetMs":1.5}', 'not a whole number of milliseconds'],
    ['{"offsetMs":1e300}', 'within ±3650 days'],
  ])('when damaged (%j), are refused naming the path and the problem', (content, problem) => {
    const file = fresh();
    writeFileSync(file, content);
    const err = catchError(() => readClockFile(file, 'CERTFLOW_CLOCK_FILE'));
    expect(err.code).toBe('ERR_CLOCK_FILE');
    expect(err.message).toContain(`CERTFLOW_CLOCK_FILE ${file}: `);
    expect(err.message).toContain(problem);
  });

  it.each(hostile)('are refused at once when %s, naming the problem', (_, problem, make) => {
    const file = fresh();
    make(file);
    expect(catchError(() => readClockFile(file)).message).toBe(`clock file ${file}: ${problem}`);
  });

  it('are refused when missing, naming the path', () => {
    const file = fresh();
    expect(catchError(() => readClockFile(file)).message).toBe(`clock file ${file}: cannot read it (ENOENT)`);
  });

  it('are never seen half-written by another process writing them in a loop', async () => {
    const file = fresh();
    writeClockFile(file, 0);
    const library = pathToFileURL(emitLibrary(join(dir, 'lib-writer'))).href;
    const writer = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { writeClockFile } from ${JSON.stringify(library)};
         for (let i = 1; i <= 3000; i += 1) writeClockFile(${JSON.stringify(file)}, i * 1000);`,
      ],
      { stdio: 'inherit' },
    );
    const exited = once(writer, 'exit');
    const seen = new Set<number>();
    let done = false;
    void exited.then(() => (done = true));
    while (!done) {
      seen.add(readClockFile(file)); // throws if it ever reads a partial file
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect((await exited)[0]).toBe(0);
    expect(readClockFile(file)).toBe(3_000_000);
    expect(seen.size).toBeGreaterThan(2);
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });
});

describe('clockFromEnvironment', () => {
  it('is the system clock when neither variable is set (or both are empty)', () => {
    for (const env of [{}, { CERTFLOW_CLOCK_OFFSET: '', CERTFLOW_CLOCK_FILE: '' }]) {
      const clock = clockFromEnvironment(env);
      expect(clock.offsetMs).toBe(0);
      expect(clock.file).toBeUndefined();
      expect(Math.abs(clock.nowMs() - Date.now())).toBeLessThan(50);
      expect(clockNotice(clock)).toBeUndefined();
      expect(isSystemClock(clock)).toBe(true);
      clock.close();
    }
    expect(isSystemClock(systemClock)).toBe(true);
    expect(isSystemClock(new OffsetClock(0))).toBe(false); // it may be moved
    expect(isSystemClock(clockFromEnvironment({ CERTFLOW_CLOCK_OFFSET: '0' }))).toBe(false);
  });

  it('starts at CERTFLOW_CLOCK_OFFSET, and says so', () => {
    const clock = clockFromEnvironment({ CERTFLOW_CLOCK_OFFSET: '+2h' });
    expect(clock.offsetMs).toBe(2 * H);
    expect(Math.abs(clock.now().getTime() - (Date.now() + 2 * H))).toBeLessThan(50);
    expect(clockNotice(clock)).toBe('clock: shifted by +2h from the real time');
    expect(clockNotice(clockFromEnvironment({ CERTFLOW_CLOCK_OFFSET: '0' }))).toBeUndefined();
  });

  it('refuses a bad CERTFLOW_CLOCK_OFFSET or a damaged CERTFLOW_CLOCK_FILE, naming the variable', () => {
    expect(catchError(() => clockFromEnvironment({ CERTFLOW_CLOCK_OFFSET: 'two hours' })).message).toContain(
      'CERTFLOW_CLOCK_OFFSET "two hours" is not a clock offset',
    );
    const file = fresh();
    writeFileSync(file, '{"offsetMs": "soon"}');
    const err = catchError(() => clockFromEnvironment({ CERTFLOW_CLOCK_FILE: file }));
    expect(err.code).toBe('ERR_CLOCK_FILE');
    expect(err.message).toBe(`CERTFLOW_CLOCK_FILE ${file}: "offsetMs" is not a number`);
  });

  it("starts at the file's offset when the file exists, and follows it within its poll interval", async () => {
    const file = fresh();
    writeClockFile(file, H);
    const clock = clockFromEnvironment({ CERTFLOW_CLOCK_OFFSET: '+5h', CERTFLOW_CLOCK_FILE: file });
    try {
      expect(clock.offsetMs).toBe(H);
      expect(clockNotice(clock)).toBe(
        `clock: shifted by +1h from the real time and follows CERTFLOW_CLOCK_FILE=${file}`,
      );
      for (const offset of [-2 * H, 0, 36 * H]) {
        writeClockFile(file, offset);
        const took = await until(() => clock.offsetMs === offset);
        expect(took).toBeLessThan(CLOCK_FILE_POLL_MS * 3);
      }
    } finally {
      clock.close();
    }
    writeClockFile(file, 7);
    await new Promise((resolve) => setTimeout(resolve, CLOCK_FILE_POLL_MS * 4));
    expect(clock.offsetMs).toBe(36 * H); // closed: no longer following
  });

  it('starts at CERTFLOW_CLOCK_OFFSET when the file does not exist yet, then follows it once written', async () => {
    const file = fresh();
    const clock = clockFromEnvironment({ CERTFLOW_CLOCK_OFFSET: '-90s', CERTFLOW_CLOCK_FILE: file });
    try {
      expect(clock.offsetMs).toBe(-90_000);
      writeClockFile(file, 3 * H);
      await until(() => clock.offsetMs === 3 * H);
    } finally {
      clock.close();
    }
  });

  it('keeps the last good offset when the file is damaged or removed later, and reports it', async () => {
    const file = fresh();
    writeClockFile(file, H);
    const errors: ClockError[] = [];
    const clock: EnvironmentClock = clockFromEnvironment(
      { CERTFLOW_CLOCK_FILE: file },
      { onError: (err) => errors.push(err) },
    );
    try {
      writeFileSync(file, '{"offsetMs": ');
      await until(() => errors.length === 1);
      expect(errors[0]?.message).toBe(
        `CERTFLOW_CLOCK_FILE ${file}: is not JSON (expected {"offsetMs": <integer>, "setAt": "<time>"}); the clock stays at +1h`,
      );
      rmSync(file);
      await until(() => errors.length === 2);
      expect(errors[1]?.message).toBe(`CERTFLOW_CLOCK_FILE ${file}: is gone; the clock stays at +1h`);
      expect(clock.offsetMs).toBe(H);
      writeClockFile(file, 2 * H);
      await until(() => clock.offsetMs === 2 * H);
    } finally {
      clock.close();
    }
  });

  it.each(hostile)(
    'keeps the last good offset when the file is replaced by %s, reports it and never blocks',
    async (_, problem, make) => {
      const file = fresh();
      writeClockFile(file, H);
      const errors: ClockError[] = [];
      const clock = clockFromEnvironment(
        { CERTFLOW_CLOCK_FILE: file },
        { onError: (err) => errors.push(err) },
      );
      let ticks = 0;
      const timer = setInterval(() => (ticks += 1), 10);
      try {
        rmSync(file);
        make(file);
        await until(() => errors.length === 1);
        expect(errors[0]?.message).toBe(`CERTFLOW_CLOCK_FILE ${file}: ${problem}; the clock stays at +1h`);
        const seen = ticks;
        await until(() => ticks > seen + 2);
        expect(clock.offsetMs).toBe(H);
      } finally {
        clearInterval(timer);
        clock.close();
      }
    },
  );

  it.each(hostile)('refuses to start on %s', (_, problem, make) => {
    const file = fresh();
    make(file);
    const err = catchError(() => clockFromEnvironment({ CERTFLOW_CLOCK_FILE: file }));
    expect(err.message).toBe(`CERTFLOW_CLOCK_FILE ${file}: ${problem}`);
  });

  it('is followed by a second process, which its watching never keeps alive', async () => {
    const file = fresh();
    writeClockFile(file, 0);
    const library = pathToFileURL(emitLibrary(join(dir, 'lib-follower'))).href;
    // The second process prints each offset it sees until it has seen +1h, and never calls close().
    const follower = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { clockFromEnvironment } from ${JSON.stringify(library)};
         const clock = clockFromEnvironment();
         process.stdout.write(clock.offsetMs + '\\n');
         const timer = setInterval(() => { if (clock.offsetMs !== 0) { process.stdout.write(clock.offsetMs + '\\n'); clearInterval(timer); } }, 5);`,
      ],
      {
        env: { ...process.env, CERTFLOW_CLOCK_FILE: file, CERTFLOW_CLOCK_OFFSET: '' },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let output = '';
    follower.stdout.on('data', (chunk: Buffer) => (output += chunk));
    const exited = once(follower, 'exit');
    try {
      await until(() => output !== '', 10_000);
      expect(output).toBe('0\n');
      const writtenAt = Date.now();
      writeClockFile(file, H);
      // It exits by itself once its own interval is cleared: the clock's polling never holds it.
      const [code] = await Promise.race([
        exited,
        new Promise<never>((_, reject) => setTimeout(reject, 5000, new Error('still running'))),
      ]);
      expect(Date.now() - writtenAt).toBeLessThan(2000);
      expect(code).toBe(0);
      expect(output).toBe(`0\n${H}\n`);
    } finally {
      follower.kill();
    }
  });
});

async function until(condition: () => boolean, timeoutMs = 2000): Promise<number> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return Date.now() - started;
}
