/**
 * A real Redis server for tests whose subject is Redis (shared rate-limit counters, the shared
 * token cache): `redis-server` from Debian on a free loopback port, no persistence, stopped
 * with the test. A missing `redis-server` is an error, never a skipped test.
 */
import { spawn, ChildProcess } from 'node:child_process';
import { createServer, connect } from 'node:net';

export interface RedisServer {
  url: string;
  port: number;
  /** Stops the server (simulating an outage), keeping its port for `start()`. */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.end();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startRedisServer(
  binary = process.env.REDIS_SERVER_BIN ?? 'redis-server',
): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    let output = '';
    const proc = spawn(
      binary,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child = proc;
    proc.stdout?.on('data', (d) => (output += d));
    proc.stderr?.on('data', (d) => (output += d));
    const spawnError = new Promise<never>((_, reject) =>
      proc.once('error', (err) =>
        reject(new Error(`cannot start ${binary} (install Debian's redis-server): ${err.message}`)),
      ),
    );
    const ready = (async () => {
      for (let i = 0; i < 100; i++) {
        if (proc.exitCode !== null) throw new Error(`${binary} exited with ${proc.exitCode}: ${output}`);
        if (await accepting(port)) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`${binary} did not accept connections on port ${port}: ${output}`);
    })();
    await Promise.race([ready, spawnError]);
  };

  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      const proc = child;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGKILL');
    });

  await start();
  return { url: `redis://127.0.0.1:${port}`, port, stop, start };
}
