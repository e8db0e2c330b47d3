import { describe, expect, it } from 'vitest';
import { DuplicateMemberError, parseJsonObjectStrict } from './strict-json';

describe('parseJsonObjectStrict', () => {
  it('parses an object with nested objects, arrays and escaped strings', () => {
    const text = '{"a":"x\\"y\\\\","b":[{"a":1},{"a":2}],"c":{"d":{"a":null}},"e":"{\\"a\\":1,\\"a\\":2}"}';
    expect(parseJsonObjectStrict(text)).toEqual(JSON.parse(text));
  });

  it.each([
    ['{"aud":"a","aud":"b"}', 'aud'],
    ['{"a":1,"b":{"c":1,"c":2}}', 'c'],
    ['{"a":[{"x":1,"x":1}]}', 'x'],
    ['{"a":{"b":1},"a":2}', 'a'],
    ['{"roles":[],"\\u0072oles":["Orders.Write"]}', 'roles'],
    ['{ "a" : 1 , "a" : 1 }', 'a'],
  ])('refuses duplicate members in %s', (text, member) => {
    expect(() => parseJsonObjectStrict(text)).toThrow(DuplicateMemberError);
    try {
      parseJsonObjectStrict(text);
    } catch (err) {
      expect((err as DuplicateMemberError).member).toBe(member);
    }
  });

  it('allows the same name in sibling objects', () => {
    expect(parseJsonObjectStrict('{"a":{"id":1},"b":{"id":2},"c":[{"id":3},{"id":4}]}')).toBeDefined();
  });

  it.each(['[1]', '"s"', '1', 'null'])('refuses %s, which is not an object', (text) => {
    expect(() => parseJsonObjectStrict(text)).toThrow(TypeError);
  });

  it('refuses text that is not JSON', () => {
    expect(() => parseJsonObjectStrict('{"a":')).toThrow(SyntaxError);
  });
});
