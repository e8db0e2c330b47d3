/** Small HTTP and log helpers for the stack's tests. */
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';

/** Status of a request over HTTPS trusting `ca` (the development CA). */
export function httpsStatus(
  url: string,
  ca: Buffer,
  opts: { method?: string; token?: string | undefined; json?: unknown } = {},
): Promise<number> {
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.json !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', ca, headers }, (res) => {
      res.resume().on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject).end(opts.json === undefined ? undefined : JSON.stringify(opts.json));
  });
}

/** Status of a GET over plain HTTP (the API behind the gateway). */
export const httpStatus = async (url: string, token?: string): Promise<number> =>
  (await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} })).status;

/** The sorted `roles` claim of an access token (none: []). */
export function rolesIn(token: string): string[] {
  const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as {
    roles?: string[];
  };
  return [...(claims.roles ?? [])].sort();
}

export interface TracedLine {
  event: string;
  status: number;
  traceId: string;
  spanId: string;
  [field: string]: unknown;
}

/** The JSON line of `file` that carries `traceId`, once it is there (both logs are written in batches). */
export async function lineWithTrace(file: string, traceId: string, timeoutMs = 5_000): Promise<TracedLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    const line = text.split('\n').find((l) => l.includes(`"traceId":"${traceId}"`));
    if (line) return JSON.parse(line) as TracedLine;
    if (Date.now() > deadline)
      throw new Error(`no line with traceId ${traceId} in ${file} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
