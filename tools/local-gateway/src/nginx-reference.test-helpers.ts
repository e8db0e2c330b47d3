/**
 * Debian's nginx (package nginx-light) as a TLS reverse proxy in front of a given upstream: the
 * reference column of the attack corpus. Runs unprivileged in the foreground (no master
 * process), with every file it writes in a temporary directory.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where Debian installs it (not on an unprivileged user's PATH); `NGINX_BINARY` overrides. */
export const NGINX_BINARY = process.env.NGINX_BINARY ?? '/usr/sbin/nginx';

export interface NginxReferenceOptions {
  upstreamPort: number;
  certificatePem: string;
  privateKeyPem: string;
  /** Seconds nginx waits for the request head, between body reads, and on an idle connection. */
  headerTimeoutS: number;
  bodyTimeoutS: number;
  keepAliveTimeoutS: number;
  maxBodyBytes: number;
}

export interface RunningNginx {
  port: number;
  version: string;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function config(dir: string, port: number, o: NginxReferenceOptions): string {
  return `daemon off;
master_process off;
worker_processes 1;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 256; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client-body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  client_header_timeout ${o.headerTimeoutS}s;
  client_body_timeout ${o.bodyTimeoutS}s;
  keepalive_timeout ${o.keepAliveTimeoutS}s;
  client_max_body_size ${o.maxBodyBytes};
  large_client_header_buffers 4 16k;
  upstream recording {
    server 127.0.0.1:${o.upstreamPort};
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${port} ssl;
    server_name localhost;
    ssl_certificate ${dir}/server.pem;
    ssl_certificate_key ${dir}/server.key;
    location / {
      proxy_pass http://recording;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
    }
  }
}
`;
}

/**
 * Starts nginx, or resolves with the reason it cannot (binary missing, config refused): the
 * caller reports that instead of a reference column.
 */
export async function startNginxReference(
  o: NginxReferenceOptions,
): Promise<RunningNginx | { unavailable: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'nginx-reference-'));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  writeFileSync(join(dir, 'server.pem'), o.certificatePem);
  writeFileSync(join(dir, 'server.key'), o.privateKeyPem, { mode: 0o600 });
  const port = await freePort();
  writeFileSync(join(dir, 'nginx.conf'), config(dir, port, o));

  let output = '';
  let exited: string | undefined;
  const child: ChildProcess = spawn(
    NGINX_BINARY,
    ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  child.on('error', (err) => (exited = `${NGINX_BINARY}: ${err.message}`));
  child.on('exit', (code, signal) => (exited ??= `exited with ${signal ?? code}`));

  const deadline = performance.now() + 5_000;
  while (!exited && !(await canConnect(port))) {
    if (performance.now() > deadline) {
      exited = 'did not listen within 5 s';
      child.kill('SIGKILL');
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (exited) {
    let log = '';
    try {
      log = readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      // nothing logged
    }
    remove();
    return { unavailable: `nginx ${exited}: ${`${output}\n${log}`.trim()}` };
  }

  let version = '';
  const versionOf = spawn(NGINX_BINARY, ['-v'], { stdio: ['ignore', 'ignore', 'pipe'] });
  versionOf.stderr.on('data', (d: Buffer) => (version += d.toString()));
  await new Promise((resolve) => versionOf.on('close', resolve));

  return {
    port,
    version: version.trim().replace(/^nginx version: /, ''),
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await gone;
      }
      remove();
    },
  };
}
