/**
 * The processes the gateway benchmarks start besides the stack: the bare Node.js proxy
 * (node-proxy.ts) as its own process, with a server certificate of the same kind as the
 * gateway's (from the stack's development CA).
 */
import { DevelopmentCa } from '@certflow/certs';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopChild } from '@certflow/stack';

export interface BenchProcess {
  url: URL;
  pid: number;
  stop(): Promise<void>;
}

/** Starts node-proxy.js in front of `api`; `nodeArgs` go to node itself (e.g. `--cpu-prof`). */
export async function startNodeProxy(
  stateDir: string,
  api: URL,
  nodeArgs: readonly string[] = [],
): Promise<BenchProcess> {
  const script = join(__dirname, 'node-proxy.js');
  if (!existsSync(script))
    throw new Error(`${script} is missing: build the stack first (npx nx run stack:build)`);
  const dir = mkdtempSync(join(tmpdir(), 'certflow-bench-node-proxy-'));
  const tls = DevelopmentCa.loadOrCreate(stateDir).issueServerCertificate();
  writeFileSync(join(dir, 'server.crt.pem'), tls.certificatePem);
  writeFileSync(join(dir, 'server.key.pem'), tls.privateKeyPem, { mode: 0o600 });
  const child = spawn(
    process.execPath,
    [...nodeArgs, script, join(dir, 'server.crt.pem'), join(dir, 'server.key.pem'), api.href],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const stop = async (): Promise<void> => {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(
        () => reject(new Error(`node-proxy did not listen within 10 s: ${output}`)),
        10_000,
      );
      child.stderr.on('data', (d) => (output += d));
      child.stdout.on('data', (d) => {
        output += d;
        const port = /\{"port":(\d+)\}/.exec(output)?.[1];
        if (port) {
          clearTimeout(timer);
          resolve(Number(port));
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`node-proxy exited with code ${code}: ${output}`));
      });
    });
    return { url: new URL(`https://localhost:${port}`), pid: child.pid!, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
