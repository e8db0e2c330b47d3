import { describe, expect, it } from 'vitest';
import { jsonSyntaxProblem } from './json-syntax';

describe('jsonSyntaxProblem', () => {
  it('accepts what JSON.parse accepts', () => {
    for (const text of ['{}', ' [1, -2.5e3, "a\\u00e9\\n", true, false, null, {"a": []}] ', '"x"', '0']) {
      expect(() => JSON.parse(text)).not.toThrow();
      expect(jsonSyntaxProblem(text)).toBeUndefined();
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
    expect(jsonSyntaxProblem(text)).toEqual({ line, column, message });
  });
});
