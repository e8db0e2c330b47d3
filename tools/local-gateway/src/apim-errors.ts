/**
 * Errors the way API Management reports them: a JSON body `{"statusCode":N,"message":"…"}`
 * and, inside the pipeline, a `LastError` with `Source` (the policy or built-in step) and a
 * machine-friendly `Reason` (TokenNotPresent, TokenExpired, BackendConnectionFailure, …).
 */
import type { ServerResponse } from 'node:http';

/** The body APIM answers failures with. */
export interface ApimErrorBody {
  statusCode: number;
  message: string;
}

/** APIM's `context.LastError`, raised by a policy or a built-in step and handled by `on-error`. */
export class ApimError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    /** `LastError.Source`: the policy (`validate-jwt`) or built-in step (`forward-request`). */
    readonly source: string,
    /** `LastError.Reason`, e.g. `TokenExpired`. */
    readonly reason: string,
  ) {
    super(message);
    this.name = 'ApimError';
  }
}

export function apimErrorBody(statusCode: number, message: string): string {
  const body: ApimErrorBody = { statusCode, message };
  return JSON.stringify(body);
}

/** Writes an APIM error response unless the response has already started or the client is gone. */
export function sendApimError(
  res: ServerResponse,
  statusCode: number,
  message: string,
  extraHeaders: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed || res.writableEnded) return;
  const body = apimErrorBody(statusCode, message);
  res.writeHead(statusCode, {
    ...extraHeaders,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}
