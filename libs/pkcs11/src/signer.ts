/**
 * Signing through the token. All signatures of one open token go through one session of its
 * own (separate from the session find/generate/delete use, since a PKCS#11 session runs one
 * operation at a time), and through a promise queue: C_SignInit + C_Sign of two concurrent
 * sign() calls never interleave.
 *
 * C_Sign runs asynchronously (pkcs11js' C_SignAsync, on libuv's thread pool), so a network HSM
 * does not block the event loop; C_SignInit only sets up the operation and is synchronous.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import * as pkcs11js from 'pkcs11js';
import { Pkcs11Error, cryptoki, quote, toPkcs11Error } from './errors';
import type { KeySigner, SignatureAlgorithm } from '@certflow/certs';

const MECHANISMS: Readonly<Record<SignatureAlgorithm, pkcs11js.Mechanism>> = {
  RS256: { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS },
  PS256: {
    mechanism: pkcs11js.CKM_SHA256_RSA_PKCS_PSS,
    parameter: {
      type: pkcs11js.CK_PARAMS_RSA_PSS,
      hashAlg: pkcs11js.CKM_SHA256,
      mgf: pkcs11js.CKG_MGF1_SHA256,
      saltLen: 32,
    } as pkcs11js.RsaPSS,
  },
};

export class SigningSession {
  private queue: Promise<unknown> = Promise.resolve();
  private pending = 0;
  private open = true;
  private whenIdle: (() => void) | undefined;

  constructor(
    private readonly pkcs11: pkcs11js.PKCS11,
    private readonly session: Buffer,
    private readonly token: string,
  ) {}

  sign(
    key: Buffer,
    keyName: string,
    algorithm: SignatureAlgorithm,
    data: Buffer,
    outLength: number,
  ): Promise<Buffer> {
    const doing = `signing ${algorithm} with ${keyName} in token ${quote(this.token)}`;
    const mechanism = MECHANISMS[algorithm];
    if (!mechanism) return Promise.reject(new Pkcs11Error('ERR_PKCS11', `${doing}: unsupported algorithm`));
    if (!this.open)
      return Promise.reject(new Pkcs11Error('ERR_PKCS11', `${doing}: the token has been closed`));
    const run = async (): Promise<Buffer> => {
      cryptoki(doing, () => this.pkcs11.C_SignInit(this.session, mechanism, key));
      try {
        return await this.pkcs11.C_SignAsync(this.session, data, Buffer.alloc(outLength));
      } catch (err) {
        throw toPkcs11Error(doing, err);
      }
    };
    this.pending++;
    const result = this.queue.then(run, run).finally(() => {
      if (--this.pending === 0 && this.whenIdle) this.closeNow();
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Closes the session, then calls `closed`: at once when no signature is under way (so the
   * module can be finalised before close() returns), else when the queued ones are done.
   */
  close(closed: () => void): void {
    this.open = false;
    this.whenIdle = closed;
    if (this.pending === 0) this.closeNow();
  }

  private closeNow(): void {
    const closed = this.whenIdle!;
    this.whenIdle = undefined;
    try {
      this.pkcs11.C_CloseSession(this.session);
    } catch {
      // closing the other session or finalising the module ends it too
    }
    closed();
  }
}

/** The RSA public key of a key object, from its CKA_MODULUS and CKA_PUBLIC_EXPONENT. */
export function rsaPublicKey(
  pkcs11: pkcs11js.PKCS11,
  session: Buffer,
  key: Buffer,
  keyName: string,
): KeyObject {
  const [modulus, exponent] = cryptoki(`reading the public part of ${keyName}`, () =>
    pkcs11.C_GetAttributeValue(session, key, [
      { type: pkcs11js.CKA_MODULUS },
      { type: pkcs11js.CKA_PUBLIC_EXPONENT },
    ]),
  ).map((a) => a.value as Buffer);
  return createPublicKey({
    key: { kty: 'RSA', n: modulus!.toString('base64url'), e: exponent!.toString('base64url') },
    format: 'jwk',
  });
}

export function pkcs11Signer(
  signing: SigningSession,
  key: Buffer,
  keyName: string,
  publicKey: KeyObject,
  description: string,
): KeySigner {
  const outLength = Math.ceil((publicKey.asymmetricKeyDetails?.modulusLength ?? 4096) / 8);
  return {
    kind: 'pkcs11',
    publicKey,
    description,
    sign: (algorithm, data) => signing.sign(key, keyName, algorithm, data, outLength),
  };
}
