import { describe, expect, it } from 'vitest';
import { scanJson } from './json-syntax';

describe('scanJson', () => {
  it('accepts what JSON.parse accepts', () => {
    for (const text of ['{}', ' [1, -2.5e3, "a\\u00e9\\n", true, false, null, {"a": []}] ', '"x"', '0']) {
      expect(() => JSON.parse(text)).not.toThrow();
      expect(scanJson(text)).toEqual({ repeatedKeys: [] });
    }
  });

  it.each([
    ['{"a": 1,}', 1, 9, "expected a property name in double quotes, found '}'"],
    ['{\n  "a": 1\n  "b": 2\n}', 3, 3, "expected ',' or '}', found '\"'"],
    [
      '{"a": "x\n"}',
      1,
      9,
      'expected a character allowed in a string (escape control characters), found U+000A',
    ],
    ["{'a': 1}", 1, 2, "expected a property name in double quotes, found '''"],
    ['{"a": tru}', 1, 10, 'expected "true", found \'}\''],
    ['[01]', 1, 3, "expected ',' or ']', found '1'"],
    ['{"a": "\\x"}', 1, 9, "expected an escape (\\\", \\\\, \\/, \\b, \\f, \\n, \\r, \\t, \\u), found 'x'"],
    ['{} {}', 1, 4, "expected the end of the file after the value, found '{'"],
    ['', 1, 1, 'expected a value, found the end of the file'],
  ])('%j: line %i, column %i', (text, line, column, message) => {
    expect(() => JSON.parse(text)).toThrow();
    expect(scanJson(text).syntax).toEqual({ line, column, message });
  });

  it('reports deep nesting without overflowing the stack, valid or not', () => {
    const depth = 200_000;
    expect(scanJson('{"apis":' + '['.repeat(depth)).syntax).toEqual({
      line: 1,
      column: 9 + depth,
      message: 'expected a value, found the end of the file',
    });
    expect(scanJson('['.repeat(depth) + ']'.repeat(depth))).toEqual({ repeatedKeys: [] });
    expect(scanJson('{"a":'.repeat(depth) + '1' + '}'.repeat(depth))).toEqual({ repeatedKeys: [] });
  });

  it('stops where nesting goes deeper than maxDepth', () => {
    expect(scanJson('{"a": [[1]], "b": {"c": [[[2]]]}}', 3)).toEqual({
      repeatedKeys: [],
      tooDeep: { line: 1, column: 26 },
    });
    expect(scanJson('{"a": [[1]]}', 3)).toEqual({ repeatedKeys: [] });
  });

  it('finds every key repeated in the same object, with its path, line and column', () => {
    const text = [
      '{',
      '  "apis": [{ "name": "a", "roles": [], "name": "b" }],',
      '  "partners": [],',
      '  "x": { "k": 1, "\u006b": 2 },',
      '  "partners": []',
      '}',
    ].join('\n');
    expect(() => JSON.parse(text)).not.toThrow();
    expect(scanJson(text)).toEqual({
      repeatedKeys: [
        { path: 'apis[0].name', key: 'name', line: 2, column: 40 },
        { path: 'x.k', key: 'k', line: 4, column: 18 },
        { path: 'partners', key: 'partners', line: 5, column: 3 },
      ],
    });
    expect(scanJson('{"a": {"b": 1}, "c": {"b": 2}}')).toEqual({ repeatedKeys: [] });
  });
});
