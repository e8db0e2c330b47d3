/**
 * What a generated key pair must be, and how a key's attributes are read back to check it: the
 * private key is sensitive, never extractable, and signs with CKM_SHA256_RSA_PKCS(_PSS) only.
 */
import * as pkcs11js from 'pkcs11js';
import { ckrOf } from './errors';

export interface Pkcs11KeyAttributes {
  label: string;
  id: Buffer;
  sensitive: boolean;
  extractable: boolean;
  alwaysSensitive: boolean;
  neverExtractable: boolean;
  canSign: boolean;
  /** CKA_DECRYPT, CKA_UNWRAP, CKA_DERIVE, CKA_SIGN_RECOVER: each lets the PIN holder use the key
   *  for something other than signing (decrypting, unwrapping secrets sealed to it). */
  canDecrypt: boolean;
  canUnwrap: boolean;
  canDerive: boolean;
  canSignRecover: boolean;
  /** CKA_ALLOWED_MECHANISMS (CKM_* names); undefined when the token does not keep the attribute. */
  allowedMechanisms: string[] | undefined;
  modulusBits: number;
  /** The certificate directory the key was made for ("certflow:<SHA-256 of its real path>", in
   *  CKA_SUBJECT, set at generation); null when the key carries none (not made by certflow). */
  binding: string | null;
  /** CKA_MODIFIABLE: false for keys certflow makes, so no one can rewrite the binding or the flags. */
  modifiable: boolean;
}

/** What a certflow binding in CKA_SUBJECT starts with. */
export const BINDING_PREFIX = 'certflow:';

export const KEY_SIZES = [2048, 3072, 4096];

/**
 * The only mechanisms a generated key may be used with. CKA_SIGN alone would also allow
 * CKM_RSA_X_509, a raw private-key operation: with it, whoever holds the PIN decrypts anything
 * sealed to the public key by "signing" the ciphertext.
 */
const SIGNING_MECHANISMS = new Map([
  [pkcs11js.CKM_SHA256_RSA_PKCS, 'CKM_SHA256_RSA_PKCS'],
  [pkcs11js.CKM_SHA256_RSA_PKCS_PSS, 'CKM_SHA256_RSA_PKCS_PSS'],
]);
const MECHANISM_SIZE = 8; // CK_MECHANISM_TYPE is an unsigned long: 64 bits on the platforms Node runs on

function mechanismList(mechanisms: number[]): Buffer {
  const buffer = Buffer.alloc(mechanisms.length * MECHANISM_SIZE);
  mechanisms.forEach((m, i) => buffer.writeBigUInt64LE(BigInt(m), i * MECHANISM_SIZE));
  return buffer;
}

function mechanismNames(list: Buffer): string[] {
  const names: string[] = [];
  for (let i = 0; i + MECHANISM_SIZE <= list.length; i += MECHANISM_SIZE) {
    const value = Number(list.readBigUInt64LE(i));
    names.push(SIGNING_MECHANISMS.get(value) ?? `0x${value.toString(16)}`);
  }
  return names;
}

/**
 * The public and private templates of C_GenerateKeyPair (e = 65537). Both objects carry the
 * binding in CKA_SUBJECT and are CKA_MODIFIABLE=false: set once, at creation, never rewritten.
 */
export function keyPairTemplate(
  label: string,
  id: Buffer,
  bits: number,
  binding: string | undefined,
): { publicKey: pkcs11js.Template; privateKey: pkcs11js.Template } {
  const common = [
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_LABEL, value: label },
    { type: pkcs11js.CKA_ID, value: id },
    { type: pkcs11js.CKA_MODIFIABLE, value: false },
    ...(binding !== undefined ? [{ type: pkcs11js.CKA_SUBJECT, value: Buffer.from(binding, 'utf8') }] : []),
  ];
  return {
    publicKey: [
      ...common,
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
      { type: pkcs11js.CKA_PRIVATE, value: false },
      { type: pkcs11js.CKA_VERIFY, value: true },
      { type: pkcs11js.CKA_ENCRYPT, value: false },
      { type: pkcs11js.CKA_WRAP, value: false },
      { type: pkcs11js.CKA_VERIFY_RECOVER, value: false },
      { type: pkcs11js.CKA_MODULUS_BITS, value: bits },
      { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
    ],
    privateKey: [
      ...common,
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      { type: pkcs11js.CKA_SIGN, value: true },
      { type: pkcs11js.CKA_DECRYPT, value: false },
      { type: pkcs11js.CKA_UNWRAP, value: false },
      { type: pkcs11js.CKA_DERIVE, value: false },
      { type: pkcs11js.CKA_SIGN_RECOVER, value: false },
      { type: pkcs11js.CKA_ALLOWED_MECHANISMS, value: mechanismList([...SIGNING_MECHANISMS.keys()]) },
    ],
  };
}

/**
 * What of the private key template the token did not honour, e.g. 'CKA_UNWRAP is true'; with
 * `binding`, a CKA_SUBJECT that is not that binding too.
 */
export function unhonoured(a: Pkcs11KeyAttributes, binding?: string): string[] {
  const allowed = a.allowedMechanisms;
  const onlySigning =
    allowed !== undefined &&
    allowed.length === SIGNING_MECHANISMS.size &&
    [...SIGNING_MECHANISMS.values()].every((m) => allowed.includes(m));
  return [
    !a.sensitive && 'CKA_SENSITIVE is false',
    a.extractable && 'CKA_EXTRACTABLE is true',
    !a.neverExtractable && 'CKA_NEVER_EXTRACTABLE is false',
    !a.alwaysSensitive && 'CKA_ALWAYS_SENSITIVE is false',
    !a.canSign && 'CKA_SIGN is false',
    a.canDecrypt && 'CKA_DECRYPT is true',
    a.canUnwrap && 'CKA_UNWRAP is true',
    a.canDerive && 'CKA_DERIVE is true',
    a.canSignRecover && 'CKA_SIGN_RECOVER is true',
    !onlySigning && `CKA_ALLOWED_MECHANISMS is ${allowed?.join(' ') || 'not kept'}`,
    a.modifiable && 'CKA_MODIFIABLE is true',
    binding !== undefined &&
      a.binding !== binding &&
      `CKA_SUBJECT is ${a.binding ?? 'not a certflow binding'}`,
  ].filter((broken): broken is string => typeof broken === 'string');
}

function bitLength(unsigned: Buffer): number {
  let i = 0;
  while (i < unsigned.length && unsigned[i] === 0) i++;
  return i === unsigned.length ? 0 : (unsigned.length - i - 1) * 8 + unsigned[i]!.toString(2).length;
}

const FLAGS = {
  sensitive: pkcs11js.CKA_SENSITIVE,
  extractable: pkcs11js.CKA_EXTRACTABLE,
  alwaysSensitive: pkcs11js.CKA_ALWAYS_SENSITIVE,
  neverExtractable: pkcs11js.CKA_NEVER_EXTRACTABLE,
  canSign: pkcs11js.CKA_SIGN,
  canDecrypt: pkcs11js.CKA_DECRYPT,
  canUnwrap: pkcs11js.CKA_UNWRAP,
  canDerive: pkcs11js.CKA_DERIVE,
  canSignRecover: pkcs11js.CKA_SIGN_RECOVER,
  modifiable: pkcs11js.CKA_MODIFIABLE,
} as const;

/** CKA_SUBJECT as a certflow binding, or null (empty, or another tool's subject name). */
export function bindingOf(subject: Buffer): string | null {
  const text = subject.toString('utf8');
  return text.startsWith(BINDING_PREFIX) ? text : null;
}

/** A private key's attributes (pkcs11js errors propagate: the caller names what failed). */
export function readKeyAttributes(p: pkcs11js.PKCS11, session: Buffer, handle: Buffer): Pkcs11KeyAttributes {
  const flags = Object.entries(FLAGS);
  const [label, id, modulus, subject, ...values] = p
    .C_GetAttributeValue(session, handle, [
      { type: pkcs11js.CKA_LABEL },
      { type: pkcs11js.CKA_ID },
      { type: pkcs11js.CKA_MODULUS },
      { type: pkcs11js.CKA_SUBJECT },
      ...flags.map(([, type]) => ({ type })),
    ])
    .map((a) => a.value as Buffer);
  return {
    label: label!.toString('utf8'),
    id: Buffer.from(id!),
    ...(Object.fromEntries(flags.map(([name], i) => [name, values[i]![0] === 1])) as Record<
      keyof typeof FLAGS,
      boolean
    >),
    allowedMechanisms: allowedMechanisms(p, session, handle),
    modulusBits: bitLength(modulus!),
    binding: bindingOf(subject!),
  };
}

/** Asked on its own: a token without the attribute fails the whole C_GetAttributeValue. */
function allowedMechanisms(p: pkcs11js.PKCS11, session: Buffer, handle: Buffer): string[] | undefined {
  try {
    const [list] = p.C_GetAttributeValue(session, handle, [{ type: pkcs11js.CKA_ALLOWED_MECHANISMS }]);
    return mechanismNames(list!.value as Buffer);
  } catch (err) {
    if (ckrOf(err) === 'CKR_ATTRIBUTE_TYPE_INVALID') return undefined;
    throw err;
  }
}
