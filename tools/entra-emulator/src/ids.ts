import { randomBytes, randomUUID } from 'node:crypto';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function newGuid(): string {
  return randomUUID();
}

export function isGuid(value: unknown): value is string {
  return typeof value === 'string' && GUID.test(value);
}

/** Opaque random identifier, base64url (Entra's `uti`, Graph's app role assignment ids look like this). */
export function opaqueId(bytes = 16): string {
  return randomBytes(bytes).toString('base64url');
}
