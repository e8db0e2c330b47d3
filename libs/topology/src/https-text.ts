/**
 * One HTTPS request whose whole answer is read as text: the exchange (headers and body) within
 * `timeoutMs`, the body within `maxBytes`. What went wrong is an HttpsTextError whose `reason`
 * the caller turns into its own message.
 */
import { request, type Agent } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { rootCertificates } from 'node:tls';

export interface HttpsTextOptions {
  method?: string;
  headers: Record<string, string>;
  body?: string;
  /** The agent to send with; else an extra CA (PEM) trusted besides the public ones. */
  agent?: Agent;
  ca?: string;
  timeoutMs: number;
  maxBytes: number;
}

export interface HttpsAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** `timeout`: no complete answer in time; `too-large`: the body passed `maxBytes`; `network`: see `cause`. */
export class HttpsTextError extends Error {
  override readonly name = 'HttpsTextError';

  constructor(
    readonly reason: 'timeout' | 'too-large' | 'network',
    override readonly cause?: NodeJS.ErrnoException,
  ) {
    super(cause?.message ?? reason);
  }
}

export function httpsText(url: string | URL, options: HttpsTextOptions): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: HttpsTextError) => {
      clearTimeout(timer);
      if (settled) return;
      settled = true;
      reject(err);
    };
    /** Fails for `reason` and drops the connection. */
    const abandon = (reason: 'timeout' | 'too-large') => {
      fail(new HttpsTextError(reason));
      req.destroy();
    };
    const network = (err: NodeJS.ErrnoException) => fail(new HttpsTextError('network', err));
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        headers: options.headers,
        ...(options.agent !== undefined
          ? { agent: options.agent }
          : options.ca !== undefined
            ? { ca: [...rootCertificates, options.ca] }
            : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > options.maxBytes) abandon('too-large');
          else chunks.push(chunk);
        });
        res.on('end', () => {
          clearTimeout(timer);
          if (settled) return;
          settled = true;
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          });
        });
        res.on('error', network);
      },
    );
    const timer = setTimeout(() => abandon('timeout'), options.timeoutMs);
    req.on('error', network);
    req.end(options.body);
  });
}
