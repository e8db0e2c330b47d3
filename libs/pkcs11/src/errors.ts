/** Failures of PKCS#11 key handling, each with a stable `code` that callers branch on. */
export type Pkcs11ErrorCode =
  | 'ERR_PKCS11_URI'
  | 'ERR_PKCS11_MODULE'
  | 'ERR_PKCS11_TOKEN_NOT_FOUND'
  | 'ERR_PKCS11_PIN_MISSING'
  | 'ERR_PKCS11_PIN_INCORRECT'
  | 'ERR_PKCS11_PIN_LOCKED'
  | 'ERR_PKCS11_OBJECT_NOT_FOUND'
  | 'ERR_PKCS11_OBJECT_AMBIGUOUS'
  | 'ERR_PKCS11_OBJECT_EXISTS'
  | 'ERR_PKCS11';

export class Pkcs11Error extends Error {
  override readonly name = 'Pkcs11Error';
  constructor(
    readonly code: Pkcs11ErrorCode,
    message: string,
    /** The Cryptoki return value behind it, e.g. 'CKR_PIN_INCORRECT'. */
    readonly ckr?: string,
  ) {
    super(message);
  }
}

const CODE_OF_CKR: Readonly<Record<string, Pkcs11ErrorCode>> = {
  CKR_PIN_INCORRECT: 'ERR_PKCS11_PIN_INCORRECT',
  CKR_PIN_INVALID: 'ERR_PKCS11_PIN_INCORRECT',
  CKR_PIN_LEN_RANGE: 'ERR_PKCS11_PIN_INCORRECT',
  CKR_PIN_LOCKED: 'ERR_PKCS11_PIN_LOCKED',
  CKR_TOKEN_NOT_PRESENT: 'ERR_PKCS11_TOKEN_NOT_FOUND',
  CKR_TOKEN_NOT_RECOGNIZED: 'ERR_PKCS11_TOKEN_NOT_FOUND',
  CKR_SLOT_ID_INVALID: 'ERR_PKCS11_TOKEN_NOT_FOUND',
  CKR_OBJECT_HANDLE_INVALID: 'ERR_PKCS11_OBJECT_NOT_FOUND',
  CKR_KEY_HANDLE_INVALID: 'ERR_PKCS11_OBJECT_NOT_FOUND',
};

/** The certflow code for a Cryptoki return value name (anything unlisted is ERR_PKCS11). */
export function codeOfCkr(ckr: string): Pkcs11ErrorCode {
  return CODE_OF_CKR[ckr] ?? 'ERR_PKCS11';
}

/** The CKR_* name pkcs11js puts in the message of its errors, if any. */
export function ckrOf(err: unknown): string | undefined {
  const message = err instanceof Error ? err.message : String(err);
  return /\b(CKR_[A-Z0-9_]+)/.exec(message)?.[1];
}

/**
 * Runs one Cryptoki call; a failure becomes a Pkcs11Error whose message says what was being done
 * (`doing`, which names the token, object or module, never a PIN) and which CKR_* came back.
 */
export function cryptoki<T>(doing: string, call: () => T): T {
  try {
    return call();
  } catch (err) {
    throw toPkcs11Error(doing, err);
  }
}

export function toPkcs11Error(doing: string, err: unknown): Pkcs11Error {
  if (err instanceof Pkcs11Error) return err;
  const ckr = ckrOf(err);
  if (ckr === undefined) {
    return new Pkcs11Error(
      'ERR_PKCS11',
      `${doing} failed: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  return new Pkcs11Error(codeOfCkr(ckr), `${doing} failed: ${ckr}${hintFor(ckr)}`, ckr);
}

function hintFor(ckr: string): string {
  switch (ckr) {
    case 'CKR_PIN_INCORRECT':
    case 'CKR_PIN_INVALID':
    case 'CKR_PIN_LEN_RANGE':
      return ' (the PIN is wrong; certflow does not retry, as tokens lock after a few wrong PINs)';
    case 'CKR_PIN_LOCKED':
      return ' (the user PIN is locked; the token security officer must unlock or reset it)';
    default:
      return '';
  }
}

/** C0 controls, DEL and C1 controls. */
const isControl = (code: number) => code < 0x20 || (code >= 0x7f && code <= 0x9f);

/** Does text hold a control character (C0, DEL or C1)? Such text is refused in names. */
export const hasControl = (text: string): boolean => Array.from(text).some((c) => isControl(c.charCodeAt(0)));

/**
 * Text from a URI, a file or a token, quoted for a message: control characters, quotes and
 * backslashes escaped, so that it cannot forge or hide part of the message.
 */
export function quote(text: string): string {
  const escaped = Array.from(text, (c) => {
    const code = c.charCodeAt(0);
    if (c === "'" || c === '\\') return `\\${c}`;
    return isControl(code) ? `\\x${code.toString(16).padStart(2, '0')}` : c;
  }).join('');
  return `'${escaped}'`;
}
