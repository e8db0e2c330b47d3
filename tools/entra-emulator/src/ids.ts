import { randomBytes, randomUUID } from 'node:crypto';

export function newGuid(): string {
  return randomUUID();
}

/** Opaque random identifier, base64url (Entra's `uti`, Graph's app role assignment ids look like this). */
export function opaqueId(bytes = 16): string {
  return randomBytes(bytes).toString('base64url');
}
