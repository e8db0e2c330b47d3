import { describe, expect, it } from 'vitest';
import { ConfigError, envUrl } from './env';

const API: [string, string[]] = ['PARTNER_API_BASE_URL', ['https:', 'http:']];
const INSTANCE: [string, string[]] = ['ENTRA_INSTANCE', ['https:']];

// The URL cases the three partner quick-starts' tests share (examples/partners), as envUrl sees them.
const refused: [[string, string[]], string, string][] = [
  [API, 'https://127.0.0.1:8443?', 'must not have a query or fragment'],
  [API, 'https://127.0.0.1:8443#', 'must not have a query or fragment'],
  [API, 'https://127.0.0.1:8443/api?', 'must not have a query or fragment'],
  [INSTANCE, 'https://login.example.test?', 'must not have a query or fragment'],
  [INSTANCE, 'https://login.example.test#', 'must not have a query or fragment'],
  [API, 'https://@127.0.0.1:8443', 'must not contain credentials'],
  [API, 'https://127.0.0.1:99999', 'must be an absolute URL'],
  [INSTANCE, 'https://login.example.test:99999', 'must be an absolute URL'],
  [INSTANCE, 'https://[::1', 'must be an absolute URL'],
  [INSTANCE, 'https://:8443', 'must be an absolute URL'],
  [API, 'https://[v1.x]', 'must be an absolute URL'],
];

describe('envUrl', () => {
  it.each(refused)('refuses %j = %s, naming the variable', ([name, protocols], value, problem) => {
    let error: unknown;
    try {
      envUrl(name, value, protocols);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(name);
    expect((error as ConfigError).message).toMatch(new RegExp(`^${name}: ${problem}`));
  });

  it.each([
    ['https://127.0.0.1:8443/api/', 'https://127.0.0.1:8443/api/'],
    ['http://[::1]:8080/a@b', 'http://[::1]:8080/a@b'],
  ])('accepts %s (an @ in the path is no credential)', (value, href) => {
    expect(envUrl(API[0], value, API[1]).href).toBe(href);
  });
});
