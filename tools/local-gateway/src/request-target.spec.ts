import { describe, expect, it } from 'vitest';
import { parseRequestTarget } from './request-target';

const path = (raw: string) => {
  const t = parseRequestTarget(raw);
  if (!t.ok) throw new Error(`refused: ${t.message}`);
  return `${t.path}${t.search}`;
};
const refusal = (raw: string, max?: number) => {
  const t = parseRequestTarget(raw, max);
  if (t.ok) throw new Error(`accepted as ${t.path}`);
  return { status: t.status, reason: t.reason };
};

describe('request target: one normalized path', () => {
  it('leaves ordinary paths and the query string as they are', () => {
    expect(path('/orders')).toBe('/orders');
    expect(path('/orders/ord-1002?x=%2F&y=..')).toBe('/orders/ord-1002?x=%2F&y=..');
    expect(path('/.well-known/x')).toBe('/.well-known/x');
    expect(path('/a/..b/c.')).toBe('/a/..b/c.');
  });

  it('decodes unreserved characters and upper-cases the escapes it keeps', () => {
    expect(path('/%6Frders/ord-1002')).toBe('/orders/ord-1002');
    expect(path('/%4f%52DERS/%7e%2d%2E%5f')).toBe('/ORDERS/~-._');
    expect(path('/orders/a%20b%3a%c3%a9')).toBe('/orders/a%20b%3A%C3%A9');
  });

  it('resolves dot-segments, encoded ones included, never above the root', () => {
    expect(path('/orders/../orders/1')).toBe('/orders/1');
    expect(path('/x/%2e%2E/orders')).toBe('/orders');
    expect(path('/./orders/./1/.')).toBe('/orders/1/');
    expect(path('/../../orders')).toBe('/orders');
    expect(path('/orders/1/..')).toBe('/orders/');
    expect(path('/%2e%2e/%2e%2e/health')).toBe('/health');
  });

  it('refuses encoded separators, NUL, backslashes, bad escapes and fragments with 400', () => {
    for (const raw of ['/orders%2F1', '/orders%2f..%2fadmin', '/orders%5C1', '/orders\\1', '/a%00b'])
      expect(refusal(raw)).toEqual({ status: 400, reason: 'InvalidPath' });
    for (const raw of ['/a%zz', '/a%4', '/a%', '/a%%41'])
      expect(refusal(raw)).toEqual({ status: 400, reason: 'InvalidPath' });
    expect(refusal('/a#b')).toEqual({ status: 400, reason: 'InvalidRequestTarget' });
    expect(refusal('*')).toEqual({ status: 400, reason: 'InvalidRequestTarget' });
    expect(refusal('orders')).toEqual({ status: 400, reason: 'InvalidRequestTarget' });
  });

  it('reads absolute-form targets into their authority and a normalized origin-form path', () => {
    expect(parseRequestTarget('https://LocalHost:8443/%6Frders?a=1')).toEqual({
      ok: true,
      path: '/orders',
      search: '?a=1',
      absolute: { scheme: 'https', authority: 'localhost:8443' },
    });
    expect(parseRequestTarget('http://localhost:8443')).toMatchObject({ ok: true, path: '/' });
    expect(refusal('https://user@localhost/orders')).toEqual({ status: 400, reason: 'InvalidRequestTarget' });
    expect(refusal('https:///orders')).toEqual({ status: 400, reason: 'InvalidRequestTarget' });
    expect(refusal('ftp://localhost/orders')).toEqual({ status: 400, reason: 'InvalidRequestTarget' });
  });

  it('answers 414 for a target over the limit', () => {
    expect(refusal(`/${'a'.repeat(100)}`, 64)).toEqual({ status: 414, reason: 'UriTooLong' });
    expect(path(`/${'a'.repeat(63)}`)).toHaveLength(64);
  });
});
