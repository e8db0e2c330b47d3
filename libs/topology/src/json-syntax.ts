/**
 * What JSON.parse does not say about a text: where it stops being JSON (line, column, what was
 * expected) and which keys an object repeats (JSON.parse silently keeps the last one). The
 * scanner keeps its own stack instead of recursing, so any depth of nesting is reported, not a
 * stack overflow.
 */

export interface JsonPosition {
  line: number;
  column: number;
}

export interface JsonSyntaxProblem extends JsonPosition {
  message: string;
}

export interface JsonRepeatedKey extends JsonPosition {
  /** Where the repeat is, e.g. `partners` or `apis[0].appRoles[1].value`. */
  path: string;
  key: string;
}

export interface JsonScan {
  /** The first syntax error; undefined when the text is valid JSON. */
  syntax?: JsonSyntaxProblem;
  /** Keys written a second (or later) time in the same object, in file order: the first 50. */
  repeatedKeys: JsonRepeatedKey[];
  /** How many more repeats there are beyond those listed. */
  moreRepeatedKeys?: number;
  /** Where an array or object opens deeper than `maxDepth`; the scan stops there. */
  tooDeep?: JsonPosition;
}

import { withSegment } from './quote';

class Stop extends Error {
  constructor(
    readonly offset: number,
    message: string,
  ) {
    super(message);
  }
}

interface Frame {
  object: boolean;
  keys: Set<string>;
  /** The key (object) or index (array) of the value being read. */
  at: string | number;
}

function describe(text: string, at: number): string {
  if (at >= text.length) return 'the end of the file';
  const ch = text[at]!;
  return /[\x20-\x7e]/.test(ch)
    ? `'${ch}'`
    : `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

function positionOf(text: string, offset: number): JsonPosition {
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, column: before[before.length - 1]!.length + 1 };
}

/** `apis[0].appRoles` from the stack, then `key`. */
function pathOf(stack: Frame[], key: string): string {
  return [...stack.map((f) => f.at), key].reduce<string>(withSegment, '');
}

/** Repeated keys listed with their position; the rest are only counted. */
const REPEATS_LISTED = 50;

const NUMBER = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

/** Scans `text` once, without recursion; stops at nesting deeper than `maxDepth`. */
export function scanJson(text: string, maxDepth = Infinity): JsonScan {
  const repeatedKeys: JsonRepeatedKey[] = [];
  let more = 0;
  const stack: Frame[] = [];
  let i = 0;
  const fail = (expected: string): never => {
    throw new Stop(i, `expected ${expected}, found ${describe(text, i)}`);
  };
  const space = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const literal = (word: string) => {
    for (const ch of word) {
      if (text[i] !== ch) fail(`"${word}"`);
      i++;
    }
  };
  const string = () => {
    i++; // opening quote
    for (;;) {
      if (i >= text.length) fail("a closing '\"'");
      const ch = text[i]!;
      if (ch === '"') return void i++;
      if (ch < ' ') fail('a character allowed in a string (escape control characters)');
      if (ch === '\\') {
        i++;
        if (text[i] === 'u') {
          i++;
          for (let k = 0; k < 4; k++, i++) if (!/[0-9a-fA-F]/.test(text[i] ?? '')) fail('a hex digit');
          continue;
        }
        if (!'"\\/bfnrt'.includes(text[i] ?? 'x'))
          fail('an escape (\\", \\\\, \\/, \\b, \\f, \\n, \\r, \\t, \\u)');
      }
      i++;
    }
  };
  /** A property name and its ':'; records a repeat. */
  const key = (frame: Frame) => {
    space();
    if (text[i] !== '"') fail('a property name in double quotes');
    const start = i;
    string();
    const name = JSON.parse(text.slice(start, i)) as string;
    if (frame.keys.has(name)) {
      if (repeatedKeys.length < REPEATS_LISTED)
        repeatedKeys.push({ ...positionOf(text, start), path: pathOf(stack.slice(0, -1), name), key: name });
      else more++;
    }
    frame.keys.add(name);
    frame.at = name;
    space();
    if (text[i] !== ':') fail("':'");
    i++;
  };
  const scalar = () => {
    const ch = text[i];
    if (ch === '"') return string();
    if (ch === 't') return literal('true');
    if (ch === 'f') return literal('false');
    if (ch === 'n') return literal('null');
    NUMBER.lastIndex = i;
    const match = NUMBER.exec(text);
    if (!match || match[0] === '-')
      fail(ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9') ? 'a number' : 'a value');
    i += match![0].length;
  };
  try {
    let wantValue = true;
    for (;;) {
      if (wantValue) {
        space();
        const ch = text[i];
        if (ch === '{' || ch === '[') {
          const frame: Frame = { object: ch === '{', keys: new Set(), at: 0 };
          i++;
          space();
          if (text[i] === (frame.object ? '}' : ']')) {
            i++;
            wantValue = false;
            continue;
          }
          if (stack.length >= maxDepth) return { repeatedKeys, tooDeep: positionOf(text, i - 1) };
          stack.push(frame);
          if (frame.object) key(frame);
          continue;
        }
        scalar();
        wantValue = false;
        continue;
      }
      const top = stack[stack.length - 1];
      if (top === undefined) break;
      space();
      const close = top.object ? '}' : ']';
      if (text[i] === ',') {
        i++;
        if (top.object) key(top);
        else top.at = (top.at as number) + 1;
        wantValue = true;
      } else if (text[i] === close) {
        i++;
        stack.pop();
      } else fail(`',' or '${close}'`);
    }
    space();
    if (i < text.length) fail('the end of the file after the value');
    return { repeatedKeys, ...(more > 0 ? { moreRepeatedKeys: more } : {}) };
  } catch (err) {
    if (!(err instanceof Stop)) throw err;
    return { syntax: { ...positionOf(text, err.offset), message: err.message }, repeatedKeys };
  }
}
