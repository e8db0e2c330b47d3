/**
 * `JSON.parse` for the JOSE header and the claims of a token, refusing duplicate member names:
 * RFC 7519 §4 lets a parser either reject them or keep the last one, and two parsers that
 * disagree (the gateway's and ours) are how a claim gets smuggled past one of them.
 *
 * @example
 *   parseJsonObjectStrict('{"aud":"a","aud":"b"}'); // throws DuplicateMemberError('aud')
 */
export class DuplicateMemberError extends Error {
  override readonly name = 'DuplicateMemberError';
  constructor(readonly member: string) {
    super(`duplicate member "${member.length > 32 ? `${member.slice(0, 32)}…` : member}"`);
  }
}

/** Parses JSON text that must be an object; throws SyntaxError, TypeError (not an object) or DuplicateMemberError. */
export function parseJsonObjectStrict(text: string): Record<string, unknown> {
  const value: unknown = JSON.parse(text); // syntax first: the scan below assumes valid JSON
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new TypeError('not a JSON object');
  assertNoDuplicateMembers(text);
  return value as Record<string, unknown>;
}

/** Walks valid JSON text keeping, per open object, the member names seen so far. */
function assertNoDuplicateMembers(text: string): void {
  const stack: (Set<string> | null)[] = []; // a Set per open object, null per open array
  let expectingKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{') {
      stack.push(new Set());
      expectingKey = true;
    } else if (c === '[') {
      stack.push(null);
      expectingKey = false;
    } else if (c === '}' || c === ']') {
      stack.pop();
      expectingKey = false;
    } else if (c === ',') {
      expectingKey = stack[stack.length - 1] instanceof Set;
    } else if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      if (expectingKey) {
        const name = JSON.parse(text.slice(i, end + 1)) as string; // unescaped: "a" and "\u0061" are the same name
        const members = stack[stack.length - 1] as Set<string>;
        if (members.has(name)) throw new DuplicateMemberError(name);
        members.add(name);
        expectingKey = false;
      }
      i = end;
    }
  }
}
