/**
 * PKCS#11 URIs (RFC 7512): `pkcs11:` + `;`-separated path attributes (which token and object)
 * + optionally `?` and `&`-separated query attributes (how to reach it: module and PIN source).
 * Values are percent-decoded; `id` is bytes, the others UTF-8 text.
 *
 * certflow refuses, rather than ignores, anything it would not act on: an attribute it does not
 * select by could otherwise silently pick a different key. `pin-value` is refused outright.
 * Error messages name attributes, never echo the URI (it might carry a PIN).
 */
import { Pkcs11Error, hasControl, quote } from './errors';

export type Pkcs11ObjectType = 'private' | 'public' | 'cert' | 'secret-key' | 'data';

export interface Pkcs11Uri {
  token?: string;
  manufacturer?: string;
  serial?: string;
  model?: string;
  slotId?: number;
  object?: string;
  id?: Buffer;
  type?: Pkcs11ObjectType;
  modulePath?: string;
  moduleName?: string;
  pinSource?: string;
}

const SCHEME = 'pkcs11:';
const OBJECT_TYPES: readonly Pkcs11ObjectType[] = ['private', 'public', 'cert', 'secret-key', 'data'];
const TEXT_PATH = {
  token: 'token',
  manufacturer: 'manufacturer',
  serial: 'serial',
  model: 'model',
  object: 'object',
} as const;
const QUERY = {
  'module-path': 'modulePath',
  'module-name': 'moduleName',
  'pin-source': 'pinSource',
} as const;
const PATH_NAMES = [...Object.keys(TEXT_PATH), 'slot-id', 'id', 'type'];
/** RFC 7512 attributes certflow does not select by: refused with what to use instead. */
const NOT_SELECTED_BY: Readonly<Record<string, string>> = {
  'library-manufacturer': 'the module is chosen by module-path or PARTNER_PKCS11_MODULE',
  'library-description': 'the module is chosen by module-path or PARTNER_PKCS11_MODULE',
  'library-version': 'the module is chosen by module-path or PARTNER_PKCS11_MODULE',
  'slot-manufacturer': 'select the slot with slot-id, or the token with token, serial, manufacturer or model',
  'slot-description': 'select the slot with slot-id, or the token with token, serial, manufacturer or model',
};
export const PIN_VALUE_REFUSED =
  'pin-value is refused: a PIN written into a URI ends up in shell history, process listings and logs. ' +
  'Keep the PIN in a file only its owner can read (chmod 600) and name it with pin-source=file:/path/to/pin, ' +
  'or set PARTNER_PKCS11_PIN';

const PATH_CHARS = /[A-Za-z0-9\-._~:[\]@!$'()*+,=&]/;
const QUERY_CHARS = /[A-Za-z0-9\-._~:[\]@!$'()*+,=/?|]/;

function uriError(message: string): Pkcs11Error {
  return new Pkcs11Error('ERR_PKCS11_URI', `PKCS#11 URI: ${message}`);
}

function percentDecode(raw: string, attribute: string, allowed: RegExp): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === '%') {
      const hex = raw.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) {
        throw uriError(
          `${attribute}: '%' must be followed by two hexadecimal digits (write a literal % as %25)`,
        );
      }
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (allowed.test(c)) {
      bytes.push(c.charCodeAt(0));
    } else {
      const shown =
        c === ' ' ? 'a space' : /[\x21-\x7e]/.test(c) ? `'${c}'` : `U+${c.codePointAt(0)!.toString(16)}`;
      throw uriError(`${attribute}: ${shown} must be percent-encoded (RFC 7512 section 2.3)`);
    }
  }
  return Buffer.from(bytes);
}

/** A text attribute's value: UTF-8 without control characters (a name, label or path). */
function utf8(bytes: Buffer, attribute: string): string {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw uriError(`${attribute} is not valid UTF-8 once percent-decoded`);
  }
  if (hasControl(text))
    throw uriError(
      `${attribute} holds a control character once percent-decoded (e.g. %00, %0A); names cannot`,
    );
  return text;
}

/** Levenshtein distance, for "did you mean" on misspelt attribute names. */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length]!;
}

function unknownAttribute(name: string, where: 'path' | 'query', known: readonly string[]): Pkcs11Error {
  const near = known
    .map((k) => ({ k, d: distance(name.toLowerCase(), k) }))
    .filter(({ k, d }) => d <= Math.max(2, Math.floor(k.length / 3)))
    .sort((x, y) => x.d - y.d)[0];
  const hint = near ? `; did you mean '${near.k}'?` : `; certflow accepts ${known.join(', ')}`;
  return uriError(`unknown ${where} attribute '${name}'${hint}`);
}

function attributes(part: string, separator: string, where: 'path' | 'query'): [string, string][] {
  if (part === '') return [];
  const seen = new Set<string>();
  return part.split(separator).map((pair) => {
    const eq = pair.indexOf('=');
    if (eq <= 0)
      throw uriError(`each ${where} attribute must be name=value (found ${quote(pair.slice(0, 40))})`);
    const name = pair.slice(0, eq);
    if (!/^[A-Za-z0-9\-_]+$/.test(name))
      throw uriError(`${quote(name.slice(0, 40))} is not an attribute name`);
    if (name === 'pin-value') throw new Pkcs11Error('ERR_PKCS11_URI', PIN_VALUE_REFUSED);
    if (seen.has(name)) throw uriError(`attribute '${name}' appears more than once`);
    seen.add(name);
    return [name, pair.slice(eq + 1)];
  });
}

/** Parses an RFC 7512 URI. pin-value, duplicates and attributes certflow does not act on are refused. */
export function parsePkcs11Uri(text: string): Pkcs11Uri {
  if (text.slice(0, SCHEME.length).toLowerCase() !== SCHEME) {
    throw uriError(
      `must start with '${SCHEME}' (RFC 7512), e.g. pkcs11:token=partner;object=partner-key;type=private`,
    );
  }
  const rest = text.slice(SCHEME.length);
  const q = rest.indexOf('?');
  const path = q < 0 ? rest : rest.slice(0, q);
  const query = q < 0 ? '' : rest.slice(q + 1);
  const uri: Pkcs11Uri = {};

  for (const [name, raw] of attributes(path, ';', 'path')) {
    if (name in NOT_SELECTED_BY) {
      throw uriError(`certflow does not select by '${name}': ${NOT_SELECTED_BY[name]}`);
    }
    if (!PATH_NAMES.includes(name)) {
      if (name in QUERY) throw uriError(`'${name}' is a query attribute: write it after '?'`);
      throw unknownAttribute(name, 'path', PATH_NAMES);
    }
    const bytes = percentDecode(raw, name, PATH_CHARS);
    if (name === 'id') {
      uri.id = bytes;
    } else if (name === 'slot-id') {
      const value = bytes.toString('latin1');
      if (!/^\d{1,15}$/.test(value))
        throw uriError(`slot-id must be a decimal number (found ${quote(value.slice(0, 20))})`);
      uri.slotId = Number(value);
    } else if (name === 'type') {
      const value = utf8(bytes, name);
      if (!OBJECT_TYPES.includes(value as Pkcs11ObjectType)) {
        throw uriError(`type must be one of ${OBJECT_TYPES.join(', ')} (found ${quote(value.slice(0, 20))})`);
      }
      uri.type = value as Pkcs11ObjectType;
    } else {
      uri[TEXT_PATH[name as keyof typeof TEXT_PATH]] = utf8(bytes, name);
    }
  }

  for (const [name, raw] of attributes(query, '&', 'query')) {
    if (!(name in QUERY)) {
      if (PATH_NAMES.includes(name)) throw uriError(`'${name}' is a path attribute: write it before '?'`);
      throw unknownAttribute(name, 'query', Object.keys(QUERY));
    }
    const value = utf8(percentDecode(raw, name, QUERY_CHARS), name);
    if (value === '') throw uriError(`${name} must not be empty`);
    uri[QUERY[name as keyof typeof QUERY]] = value;
  }
  return uri;
}

function percentEncode(value: string | Buffer, keep: RegExp): string {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  let out = '';
  for (const byte of bytes) {
    const c = String.fromCharCode(byte);
    out += byte < 0x80 && keep.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const PATH_KEEP = /[A-Za-z0-9\-._~:@!$'()*+,]/;
const QUERY_KEEP = /[A-Za-z0-9\-._~:@!$'()*+,/]/;
const NOTHING = /$^/;

/** The canonical text of a URI: attributes in a fixed order, percent-encoded; never a PIN. */
export function formatPkcs11Uri(uri: Pkcs11Uri): string {
  const path: string[] = [];
  const text = (name: string, value: string | undefined) => {
    if (value !== undefined) path.push(`${name}=${percentEncode(value, PATH_KEEP)}`);
  };
  text('token', uri.token);
  text('manufacturer', uri.manufacturer);
  text('serial', uri.serial);
  text('model', uri.model);
  if (uri.slotId !== undefined) path.push(`slot-id=${uri.slotId}`);
  text('object', uri.object);
  if (uri.id !== undefined) path.push(`id=${percentEncode(uri.id, NOTHING)}`);
  text('type', uri.type);
  const query: string[] = [];
  for (const [name, key] of Object.entries(QUERY)) {
    const value = uri[key];
    if (value !== undefined) query.push(`${name}=${percentEncode(value, QUERY_KEEP)}`);
  }
  return `${SCHEME}${path.join(';')}${query.length ? `?${query.join('&')}` : ''}`;
}

/** How a URI names an object in messages: its label and id, never a secret. */
export function describeObject(uri: Pkcs11Uri): string {
  const parts: string[] = [];
  if (uri.object !== undefined) parts.push(`label ${quote(uri.object)}`);
  if (uri.id !== undefined) parts.push(`id ${uri.id.toString('hex') || '(empty)'}`);
  return parts.join(' and ') || '(no object or id given)';
}
