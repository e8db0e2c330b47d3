/**
 * Client secrets. They are generated here (as Graph's addPassword does), 256 bits of
 * randomness, so a salted SHA-256 is enough to store them: a slow password KDF protects
 * guessable human passwords and would only slow down every secret-based token request.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface SecretHash {
  secretSalt: string;
  secretHash: string;
}

/** Shaped like Entra's secrets: 40 characters, with the `~` marker Entra uses at position 4. */
export function generateClientSecret(): string {
  const body = randomBytes(32).toString('base64url').replace(/[-_]/g, '.').slice(0, 37);
  return `${body.slice(0, 3)}8Q~${body.slice(3, 37)}`;
}

export function hashClientSecret(secret: string): SecretHash {
  const salt = randomBytes(16);
  return { secretSalt: salt.toString('base64'), secretHash: digest(salt, secret).toString('base64') };
}

export function clientSecretMatches(secret: string, stored: SecretHash): boolean {
  const expected = Buffer.from(stored.secretHash, 'base64');
  const actual = digest(Buffer.from(stored.secretSalt, 'base64'), secret);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

function digest(salt: Buffer, secret: string): Buffer {
  return createHash('sha256').update(salt).update(secret, 'utf8').digest();
}
