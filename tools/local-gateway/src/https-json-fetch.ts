/**
 * GET a JSON document over HTTPS, trusting the public roots plus an explicit extra CA
 * (the development CA). Bounded in time and size; anything but 200 + JSON is an error.
 */
import { request } from 'node:https';
import { rootCertificates } from 'node:tls';

export interface FetchJsonOptions {
  /** Extra CA (PEM) trusted in addition to Node's bundled roots. */
  trustedCaPem?: string;
  timeoutMs?: number;
  maxBytes?: number;
}

export async function fetchJson(url: string, opts: FetchJsonOptions = {}): Promise<unknown> {
  const target = new URL(url);
  if (target.protocol !== 'https:') throw new Error(`refusing to fetch ${url}: only https:// is allowed`);
  const maxBytes = opts.maxBytes ?? 1024 * 1024;
  const ca = opts.trustedCaPem ? [...rootCertificates, opts.trustedCaPem] : undefined;
  return new Promise((resolve, reject) => {
    const req = request(
      target,
      {
        method: 'GET',
        headers: { accept: 'application/json' },
        ...(ca ? { ca } : {}),
        agent: false,
        timeout: opts.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            req.destroy(new Error(`GET ${url}: response larger than ${maxBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () => {
          if (res.statusCode !== 200) {
            reject(new Error(`GET ${url}: HTTP ${res.statusCode}`));
            return;
          }
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
          } catch {
            reject(new Error(`GET ${url}: response is not JSON`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.on('error', (err) =>
      reject(err.message.startsWith('GET ') ? err : new Error(`GET ${url}: ${err.message}`)),
    );
    req.end();
  });
}
