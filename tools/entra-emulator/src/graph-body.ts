import type { IncomingMessage } from 'node:http';
import { graphErrors } from './graph-errors';
import { BodyTooLargeError, mediaType, readBody } from './http-io';

/** A Graph-style JSON request body, refused with Graph-shaped errors when too large, not JSON or not labelled JSON. */
export async function readGraphJson(req: IncomingMessage, limit: number): Promise<unknown> {
  let raw: Buffer;
  try {
    raw = await readBody(req, limit);
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw graphErrors.payloadTooLarge(err.limit);
    throw err;
  }
  if (mediaType(req) !== 'application/json') throw graphErrors.unreadableJson();
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw graphErrors.unreadableJson();
  }
}
