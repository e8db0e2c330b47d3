/**
 * One reading of the request target, made once per request and used for everything after it:
 * operation matching, policies (`context.Request.Url`), the access log and the URL forwarded to
 * the backend. A gateway that matches policies on the raw path while the API decodes it lets
 * `GET /%6Frders/1` skip an operation policy on `GET /orders/{id}`; with one normalized path the
 * two can never disagree about which operation a request is.
 *
 * Normalization (RFC 3986 §6.2.2): percent-encoded unreserved characters are decoded, other
 * escapes are kept with upper-case hex, and dot-segments are removed (after decoding, so
 * `%2e%2e` counts). Refused, because a backend may read them as a path separator or end of
 * string: an encoded `/` (`%2F`), an encoded or raw `\`, an encoded NUL, an escape that is not
 * `%` and two hex digits, a fragment, and a target over the length limit (414).
 */

/** Longest request target accepted; a longer one is answered 414 (the header block limit, 16 KiB, gives 431). */
export const DEFAULT_MAX_URL_BYTES = 8 * 1024;

export type RequestTarget =
  | {
      ok: true;
      /** Normalized path, always starting with `/`. */
      path: string;
      /** The query string as sent, with its `?`, or ''. */
      search: string;
      /** The scheme and authority of an absolute-form target (`https://HOST:PORT/…`), lower-cased. */
      absolute?: { scheme: 'http' | 'https'; authority: string };
    }
  | Refusal;

export interface Refusal {
  ok: false;
  status: 400 | 414;
  /** `LastError.Reason` in the access log. */
  reason: string;
  message: string;
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;
const ABSOLUTE_FORM = /^(https?):\/\/([^/?#]*)(.*)$/i;

function refuse(reason: string, message: string): Refusal {
  return { ok: false, status: 400, reason, message };
}

/** Reads a request target (origin-form or absolute-form) as the gateway will use it. */
export function parseRequestTarget(raw: string, maxUrlBytes = DEFAULT_MAX_URL_BYTES): RequestTarget {
  if (raw.length > maxUrlBytes)
    return {
      ok: false,
      status: 414,
      reason: 'UriTooLong',
      message: `The request target is longer than the limit of ${maxUrlBytes} bytes.`,
    };
  let absolute: { scheme: 'http' | 'https'; authority: string } | undefined;
  let target = raw;
  if (!raw.startsWith('/')) {
    const form = ABSOLUTE_FORM.exec(raw);
    if (!form) return refuse('InvalidRequestTarget', 'The request target must be a path starting with /.');
    const authority = form[2]!.toLowerCase();
    if (authority === '' || authority.includes('@'))
      return refuse('InvalidRequestTarget', 'The request target has an invalid authority.');
    absolute = { scheme: form[1]!.toLowerCase() as 'http' | 'https', authority };
    target = form[3] === '' ? '/' : form[3]!;
    if (!target.startsWith('/') && !target.startsWith('?'))
      return refuse('InvalidRequestTarget', 'The request target has an invalid path.');
    if (target.startsWith('?')) target = `/${target}`;
  }
  if (target.includes('#'))
    return refuse('InvalidRequestTarget', 'A request target must not contain a fragment (#).');
  const q = target.indexOf('?');
  const rawPath = q < 0 ? target : target.slice(0, q);
  const search = q < 0 ? '' : target.slice(q);
  const path = normalizePath(rawPath);
  if (typeof path !== 'string') return path;
  return { ok: true, path, search, ...(absolute === undefined ? {} : { absolute }) };
}

/** Most paths need no work: no escape, no backslash, no dot-segment. */
const NEEDS_WORK = /[%\\]|\/\.\.?(?:\/|$)/;

function normalizePath(rawPath: string): string | Refusal {
  if (!NEEDS_WORK.test(rawPath)) return rawPath;
  let decoded = '';
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath[i]!;
    if (c === '\\') return refuse('InvalidPath', 'A backslash is not allowed in the path.');
    if (c !== '%') {
      decoded += c;
      continue;
    }
    const hex = rawPath.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex))
      return refuse(
        'InvalidPath',
        'The path has an invalid percent-encoding (% must be followed by two hex digits).',
      );
    const upper = hex.toUpperCase();
    if (upper === '2F' || upper === '5C' || upper === '00')
      return refuse(
        'InvalidPath',
        `The path contains an encoded ${upper === '2F' ? "'/'" : upper === '5C' ? "'\\'" : 'NUL'} (%${upper}), which is not allowed.`,
      );
    const char = String.fromCharCode(parseInt(hex, 16));
    decoded += UNRESERVED.test(char) ? char : `%${upper}`;
    i += 2;
  }
  return removeDotSegments(decoded);
}

/** RFC 3986 §5.2.4 for an absolute path: `.` segments go, `..` removes the segment before it (never above /). */
function removeDotSegments(path: string): string {
  const segments = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i]!;
    const last = i === segments.length - 1;
    if (segment === '.' || segment === '..') {
      if (segment === '..' && out.length > 0) out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(segment);
  }
  return `/${out.join('/')}`;
}
