/**
 * Values from a topology file or from the directory, made safe to print: JSON string syntax,
 * with every control character (C0, DEL, C1), line or paragraph separator and Unicode
 * bidirectional control written as a `\uXXXX` escape, so it cannot move the cursor, erase a
 * line or reorder what a terminal shows.
 */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function escaped(ch: string): string {
  return `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** `value` in double quotes, with unsafe characters escaped. */
export function quote(value: string): string {
  return JSON.stringify(value).replace(UNSAFE, escaped);
}

/** `text` with unsafe characters escaped (for whole lines already built). */
export function printable(text: string): string {
  return text.replace(UNSAFE, escaped);
}

/** At most `max` lines made printable, then `… and N more` when there were more. */
export function listed(lines: string[], max = 50): string[] {
  const more = lines.length - max;
  return [...lines.slice(0, max).map(printable), ...(more > 0 ? [`… and ${more} more`] : [])];
}

/**
 * `path` followed by one segment, the way problems name a place in a topology file: `[0]` for
 * an index, `.name` for a name (no dot at the start), `["odd name"]` for any other name.
 */
export function withSegment(path: string, segment: string | number): string {
  if (typeof segment === 'number') return `${path}[${segment}]`;
  if (/^[A-Za-z_$][\w$-]*$/.test(segment)) return path === '' ? segment : `${path}.${segment}`;
  return `${path}[${quote(segment)}]`;
}
