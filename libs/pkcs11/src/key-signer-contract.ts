// TEMPORARY: a copy of the KeySigner contract until @certflow/certs exports it (then deleted).
import type { KeyObject } from 'node:crypto';

export type SignatureAlgorithm = 'RS256' | 'PS256';
export interface KeySigner {
  readonly kind: 'file' | 'pkcs11';
  readonly publicKey: KeyObject;
  readonly description: string;
  sign(algorithm: SignatureAlgorithm, data: Buffer): Promise<Buffer>;
}
