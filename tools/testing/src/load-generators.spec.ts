import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DevelopmentCa } from '@certflow/certs';
import {
  nodeGenerator,
  wrkGenerator,
  wrkPath,
  type LoadGenerator,
  type LoadOptions,
} from './load-generators';
import { rejectionOf, startHttpsServer, tempDir, type TestServer } from './partner-test-servers';

const SECRET = `s3cret-${randomBytes(12).toString('hex')}`;

/** Processes whose command line holds `text` (Linux /proc). */
function commandLinesHolding(text: string): string[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .flatMap((pid) => {
      try {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
        return cmdline.includes(text) ? [cmdline] : [];
      } catch {
        return []; // gone meanwhile
      }
    });
}

const dir = tempDir('load-generators-');
const ca = DevelopmentCa.loadOrCreate(dir.path);
let server: TestServer;
let served = 0;
let failOn: number | undefined;
let cmdlinesSeen: string[] | undefined;

beforeAll(async () => {
  server = await startHttpsServer(ca, (req, body, res) => {
    served++;
    cmdlinesSeen ??= commandLinesHolding(SECRET);
    const asked =
      req.method === 'POST' &&
      req.url === '/token?tenant=t1' &&
      req.headers['x-client-secret'] === SECRET &&
      req.headers['content-type'] === 'application/x-www-form-urlencoded' &&
      body === `grant_type=client_credentials&client_secret=${SECRET}`;
    const status = served === failOn ? 503 : asked ? 200 : 400;
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': 2 }).end('ok');
  });
});

afterAll(async () => {
  await server.close();
  dir.remove();
});

const options = (overrides: Partial<LoadOptions> = {}): LoadOptions => ({
  method: 'POST',
  path: '/token?tenant=t1',
  headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-client-secret': SECRET },
  body: `grant_type=client_credentials&client_secret=${SECRET}`,
  connections: 2,
  caPem: ca.certificatePem,
  workDir: dir.path,
  ...overrides,
});

const generators: Array<[string, boolean, (o: LoadOptions) => LoadGenerator]> = [
  ['node', true, (o) => nodeGenerator(o)],
  ['wrk', existsSync(wrkPath()), (o) => wrkGenerator(wrkPath(), o)!],
];

describe.each(generators)('the %s load generator', (name, installed, make) => {
  it.runIf(installed)(
    'sends the method, path, headers and body it was given; every answer is a 200',
    async () => {
      served = 0;
      failOn = undefined;
      const generator = make(options());
      try {
        const result = await generator.run(new URL(server.url), 1);
        expect(result.requests).toBeGreaterThan(10);
        expect(result.requests).toBeLessThanOrEqual(served);
        expect(result.seconds).toBeGreaterThan(0.9);
        expect(result.p99Ms).toBeGreaterThanOrEqual(result.p50Ms);
      } finally {
        generator.close();
      }
    },
  );

  it.runIf(installed)('fails the round on a single answer that is not the expected status', async () => {
    served = 0;
    failOn = 20;
    const generator = make(options());
    try {
      const err = await rejectionOf(generator.run(new URL(server.url), 1));
      expect(err.message).toContain('1 answers not 200 (the first: 503)');
    } finally {
      generator.close();
    }
  });

  it.runIf(installed)('fails the round when the request is not what the server expects', async () => {
    failOn = undefined;
    const generator = make(options({ body: 'grant_type=client_credentials' }));
    try {
      const err = await rejectionOf(generator.run(new URL(server.url), 1));
      expect(err.message).toMatch(/\d+ answers not 200 \(the first: 400\)/);
    } finally {
      generator.close();
    }
  });

  it('refuses a header that would split the request, naming it', () => {
    expect(() => make(options({ headers: { 'x-bad': 'a\r\nx-injected: 1' } }))).toThrow("bad header 'x-bad'");
  });

  it.runIf(installed)('says whether it verifies TLS certificates', () => {
    const generator = make(options());
    expect(generator.name).toContain(
      name === 'wrk' ? 'does not verify TLS certificates' : 'verifies TLS certificates',
    );
  });
});

it('the node generator refuses a server whose certificate its CA did not issue', async () => {
  const other = tempDir('load-generators-other-ca-');
  try {
    const generator = nodeGenerator(
      options({ caPem: DevelopmentCa.loadOrCreate(other.path).certificatePem }),
    );
    const err = await rejectionOf(generator.run(new URL(server.url), 1));
    expect(err.message).toMatch(/self.signed|unable to verify|certificate/i);
  } finally {
    other.remove();
  }
});

// wrk's command line is world-readable in /proc (the node generator starts no process).
it.runIf(existsSync(wrkPath()))(
  'wrk gets the secrets by its environment, never its command line',
  async () => {
    cmdlinesSeen = undefined;
    failOn = undefined;
    const generator = wrkGenerator(wrkPath(), options())!;
    try {
      await generator.run(new URL(server.url), 1);
    } finally {
      generator.close();
    }
    expect(cmdlinesSeen).toEqual([]);
  },
);
