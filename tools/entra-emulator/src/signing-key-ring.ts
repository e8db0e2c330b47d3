/**
 * Signing-key rotation as Entra does it: the key that will sign next is published in JWKS
 * before it signs anything, so validators that cache JWKS (for up to a day) already know it;
 * the key it replaces stays published until every token it signed has expired.
 *
 * Rotation = the published `next` key becomes `active`, the old active key becomes
 * `retired` (kept until `retireAfter`), and a fresh `next` key is created and published.
 */
import { createSigningKey, loadSigningKey, type SigningKey } from './signing-keys';
import type { StoredSigningKey } from './state-store';

export interface KeyRing {
  /** Signs every token issued now. */
  active: SigningKey;
  /** Published in JWKS, not yet signing. */
  next: SigningKey;
  /** Active first, then retired keys still inside their grace period, then the next key. */
  published: SigningKey[];
}

/**
 * Brings stored keys to the current form: exactly one active key (the first one, in state
 * files written before rotation existed) and one next key. Returns `undefined` when nothing changes.
 */
export function completeSigningKeys(
  keys: StoredSigningKey[],
  now: Date,
  retireAfter: Date,
): StoredSigningKey[] | undefined {
  let changed = false;
  let result = keys.map((k) => ({ ...k }));
  if (!result.some((k) => k.use === 'active')) {
    const first =
      result.find((k) => k.use === undefined) ?? result.find((k) => k.use !== 'next') ?? result[0]!;
    first.use = 'active';
    delete first.retireAfter;
    changed = true;
  }
  for (const key of result) {
    if (key.use === undefined) {
      key.use = 'retired';
      key.retireAfter = retireAfter.toISOString();
      changed = true;
    }
  }
  if (!result.some((k) => k.use === 'next')) {
    result = [...result, { ...createSigningKey(now), use: 'next' }];
    changed = true;
  }
  return changed ? result : undefined;
}

/** The stored keys after a rotation at `now`; retired keys past their grace period are dropped. */
export function rotatedSigningKeys(
  keys: StoredSigningKey[],
  now: Date,
  retireAfter: Date,
): { keys: StoredSigningKey[]; activeKid: string } {
  const next = keys.find((k) => k.use === 'next');
  if (!next) throw new Error('no next signing key to promote');
  const rotated: StoredSigningKey[] = [];
  for (const key of keys) {
    if (key.use === 'active')
      rotated.push({ ...key, use: 'retired', retireAfter: retireAfter.toISOString() });
    else if (key.use === 'next') rotated.push({ ...key, use: 'active' });
    else if (key.retireAfter !== undefined && new Date(key.retireAfter) > now) rotated.push({ ...key });
  }
  rotated.push({ ...createSigningKey(now), use: 'next' });
  return { keys: rotated, activeKid: next.kid };
}

/** Parses stored keys once per kid (the private-key import is the expensive part). */
export class SigningKeyCache {
  private readonly loaded = new Map<string, SigningKey>();

  get(stored: StoredSigningKey): SigningKey {
    let key = this.loaded.get(stored.kid);
    if (!key) {
      key = loadSigningKey(stored);
      this.loaded.set(stored.kid, key);
    }
    return key;
  }

  ring(keys: readonly StoredSigningKey[], now: Date): KeyRing {
    const active = keys.find((k) => k.use === 'active');
    const next = keys.find((k) => k.use === 'next');
    if (!active || !next) throw new Error('signing keys are incomplete (no active or next key)');
    const retired = keys.filter(
      (k) => k.use === 'retired' && k.retireAfter !== undefined && new Date(k.retireAfter) > now,
    );
    const published = [active, ...retired, next].map((k) => this.get(k));
    return { active: this.get(active), next: this.get(next), published };
  }
}
