/**
 * Requests Node's HTTP parser refuses (malformed or ambiguous framing, header block too large,
 * headers or body too slow) never reach the policy pipeline. They still get an HTTP answer in
 * APIM's error shape, with `Connection: close`, an access-log line and a metric, and then the
 * connection is closed: after a framing error the rest of the byte stream cannot be trusted.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { apimErrorBody } from './apim-errors';

export interface ClientErrorAnswer {
  status: number;
  /** `LastError.Reason` for the access log and metrics. */
  reason: string;
  message: string;
}

/** What to answer for an error the parser (or a server timeout) raised; undefined: the peer is gone, just close. */
export function answerFor(err: Error & { code?: string }): ClientErrorAnswer | undefined {
  const code = err.code ?? '';
  if (code === 'HPE_HEADER_OVERFLOW')
    return {
      status: 431,
      reason: 'HeaderTooLarge',
      message: 'The request line and headers are larger than the limit of 16 KiB.',
    };
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT')
    return { status: 408, reason: 'RequestTimeout', message: 'The request was not received in time.' };
  if (code === 'HPE_INVALID_EOF_STATE' || code === 'ECONNRESET' || !code.startsWith('HPE_')) return undefined;
  const detail = err.message.replace(/^Parse Error:\s*/, '');
  const framing =
    code === 'HPE_INVALID_TRANSFER_ENCODING' ||
    code === 'HPE_UNEXPECTED_CONTENT_LENGTH' ||
    code === 'HPE_INVALID_CONTENT_LENGTH' ||
    code === 'HPE_INVALID_CHUNK_SIZE';
  return {
    status: 400,
    reason: framing ? 'AmbiguousFraming' : 'MalformedRequest',
    message: `The request is malformed: ${detail}.`,
  };
}

/** Requests whose body the parser found malformed after the request was handed to the gateway. */
const malformedBodies = new WeakMap<IncomingMessage, ClientErrorAnswer>();
/** Emitted on such a request, so a body read in progress ends at once (request-body.ts). */
export const MALFORMED_BODY = Symbol('malformed body');

/** Why the parser gave up on this request's body, if it did. */
export function malformedBodyOf(req: IncomingMessage): ClientErrorAnswer | undefined {
  return malformedBodies.get(req);
}

/**
 * When the parse error is in the body of a request already being handled (a bad chunk size,
 * say), hands the error to that request: its body read fails, and its handler answers, logs and
 * closes. Returns true when it did. (Destroying the request would close the socket unanswered.)
 */
export function failRequestInProgress(socket: Socket, answer: ClientErrorAnswer | undefined): boolean {
  // The request the parser was reading when it failed (a pipelined one may not be the request
  // whose response is being written); Node keeps it on the parser, outside the typed API.
  const req = (socket as Socket & { parser?: { incoming?: IncomingMessage | null } | null }).parser?.incoming;
  if (!answer || !req || req.complete) return false;
  malformedBodies.set(req, answer);
  req.emit(MALFORMED_BODY);
  return true;
}

/** The raw bytes of an APIM error answer that closes the connection. */
function closingResponse(answer: ClientErrorAnswer): string {
  const body = apimErrorBody(answer.status, answer.message);
  return (
    `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? 'Error'}\r\n` +
    `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
    `connection: close\r\n\r\n${body}`
  );
}

/**
 * Writes the answer once the responses in progress on this connection (pipelined requests
 * before the bad one) have been sent, so answers never interleave; then closes.
 */
export function answerAndClose(socket: Socket, answer: ClientErrorAnswer | undefined): void {
  if (!answer || !socket.writable) {
    socket.destroy();
    return;
  }
  // Node keeps the response being written on the socket (and moves the next queued one there
  // when it finishes); it is not part of the typed API.
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (inFlight && !inFlight.writableFinished) {
    inFlight.once('finish', () => answerAndClose(socket, answer));
    inFlight.once('close', () => {
      if (!inFlight.writableFinished) socket.destroy();
    });
    return;
  }
  socket.end(closingResponse(answer));
  // A peer that never reads must not keep the socket: give it a moment, then drop it.
  setTimeout(() => socket.destroy(), 2_000).unref();
}
