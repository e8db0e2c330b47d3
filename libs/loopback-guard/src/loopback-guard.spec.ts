import { describe, expect, it } from 'vitest';
import {
  AllowedHostsError,
  checkRequest,
  isLoopbackAddress,
  parseAllowedHosts,
  type GuardOptions,
  type GuardRequest,
} from './loopback-guard';

const HTTP: GuardOptions = { port: 8080, scheme: 'http', boundToLoopback: true };
const HTTPS: GuardOptions = { port: 8443, scheme: 'https', boundToLoopback: true };

const status = (request: GuardRequest, options: GuardOptions = HTTP) => {
  const decision = checkRequest(request, options);
  return decision.ok ? 'ok' : decision.status;
};

describe('Host', () => {
  it.each(['localhost:8080', 'LOCALHOST:8080', '127.0.0.1:8080', '[::1]:8080'])(
    'accepts the loopback name %s with the service port',
    (host) => expect(status({ host })).toBe('ok'),
  );

  it.each([
    ['a DNS-rebinding name', 'attacker.example:8080'],
    ['a name without port', 'attacker.example'],
    ['a trailing dot', 'localhost.:8080'],
    ['a subdomain of localhost', 'evil.localhost:8080'],
    ['another loopback address', '127.0.0.2:8080'],
    ['a short IPv4 form', '127.1:8080'],
    ['another port', 'localhost:8081'],
    ['no port off the default port', 'localhost'],
    ['an empty port', 'localhost:'],
    ['a port with a leading zero', 'localhost:08080'],
    ['a port out of range', 'localhost:99999'],
    ['userinfo', 'user@localhost:8080'],
    ['a path', 'localhost:8080/x'],
    ['a space', 'localhost :8080'],
    ['an empty value', ''],
    ['an unbracketed IPv6 address', '::1:8080'],
    ['a bracketed non-address', '[localhost]:8080'],
    ['a percent-encoded name', 'local%68ost:8080'],
  ])('refuses %s (421)', (_, host) => expect(status({ host })).toBe(421));

  it('refuses a missing or repeated Host (421)', () => {
    expect(status({ host: undefined })).toBe(421);
    expect(status({ host: ['localhost:8080', 'attacker.example:8080'] })).toBe(421);
    expect(status({ host: ['localhost:8080'] })).toBe('ok');
  });

  it('accepts a configured name, case-insensitively, still only on the service port', () => {
    const options = { ...HTTP, allowedHosts: ['partner.test'] };
    expect(status({ host: 'Partner.TEST:8080' }, options)).toBe('ok');
    expect(status({ host: 'partner.test:9999' }, options)).toBe(421);
    expect(status({ host: 'partner.test.:8080' }, options)).toBe(421);
    expect(status({ host: 'attacker.example:8080' }, options)).toBe(421);
  });

  it('accepts a missing port only on the scheme default port', () => {
    expect(status({ host: 'localhost' }, { ...HTTP, port: 80 })).toBe('ok');
    expect(status({ host: 'localhost' }, { ...HTTPS, port: 443 })).toBe('ok');
    expect(status({ host: 'localhost' }, { ...HTTPS, port: 80 })).toBe(421);
  });

  it('checks no name on a server not bound to loopback unless names are configured', () => {
    const open = { ...HTTP, boundToLoopback: false };
    expect(status({ host: 'build-host.internal:8080' }, open)).toBe('ok');
    expect(status({ host: 'build-host.internal:9999' }, open)).toBe(421);
    expect(status({ host: 'bad name:8080' }, open)).toBe(421);
    expect(status({ host: 'build-host.internal:8080' }, { ...open, allowedHosts: ['other.test'] })).toBe(421);
  });

  it('checks the authority of an absolute-form target too', () => {
    expect(status({ host: 'localhost:8080', target: 'http://localhost:8080/x' })).toBe('ok');
    expect(status({ host: 'localhost:8080', target: 'http://attacker.example:8080/x' })).toBe(421);
    expect(status({ host: 'localhost:8080', target: 'https://localhost:8080/x' })).toBe(421);
    expect(status({ host: 'localhost:8080', target: 'mailto:x' })).toBe(421);
    expect(status({ host: 'localhost:8080', target: '*' })).toBe('ok');
  });

  it('names the refused Host in the reason, shortened', () => {
    const decision = checkRequest({ host: `${'a'.repeat(300)}.example` }, HTTP);
    expect(decision).toMatchObject({ ok: false, status: 421 });
    expect(!decision.ok && decision.reason.length).toBeLessThan(250);
  });
});

describe('Origin and Sec-Fetch-Site', () => {
  const host = 'localhost:8443';

  it('accepts no Origin (non-browser clients) and the same origin', () => {
    expect(status({ host }, HTTPS)).toBe('ok');
    expect(status({ host, origin: 'https://localhost:8443' }, HTTPS)).toBe('ok');
    expect(status({ host, origin: 'HTTPS://LOCALHOST:8443' }, HTTPS)).toBe('ok');
    expect(status({ host: 'localhost', origin: 'https://localhost' }, { ...HTTPS, port: 443 })).toBe('ok');
    expect(status({ host: 'localhost:443', origin: 'https://localhost' }, { ...HTTPS, port: 443 })).toBe(
      'ok',
    );
  });

  it.each([
    ['another site', 'https://attacker.example'],
    ['the null origin (sandboxed frames, file: pages)', 'null'],
    ['another scheme', 'http://localhost:8443'],
    ['another port', 'https://localhost:3000'],
    ['the default port', 'https://localhost'],
    ['another loopback name than Host', 'https://127.0.0.1:8443'],
    ['a trailing dot', 'https://localhost.:8443'],
    ['a path', 'https://localhost:8443/'],
    ['userinfo', 'https://a@localhost:8443'],
    ['two origins in one header', 'https://localhost:8443, https://attacker.example'],
    ['an empty value', ''],
  ])('refuses %s (403)', (_, origin) => expect(status({ host, origin }, HTTPS)).toBe(403));

  it('refuses a repeated Origin (403)', () => {
    expect(status({ host, origin: ['https://localhost:8443', 'https://localhost:8443'] }, HTTPS)).toBe(403);
  });

  it('accepts a configured name as origin only when it is the Host as well', () => {
    const options = { ...HTTPS, allowedHosts: ['portal.test'] };
    expect(status({ host: 'portal.test:8443', origin: 'https://portal.test:8443' }, options)).toBe('ok');
    expect(status({ host, origin: 'https://portal.test:8443' }, options)).toBe(403);
  });

  it('refuses a cross-site or same-site Sec-Fetch-Site (403), accepts same-origin and none', () => {
    expect(status({ host, secFetchSite: 'cross-site' }, HTTPS)).toBe(403);
    expect(status({ host, secFetchSite: 'same-site' }, HTTPS)).toBe(403);
    expect(status({ host, secFetchSite: ['same-origin', 'cross-site'] }, HTTPS)).toBe(403);
    expect(status({ host, secFetchSite: 'same-origin', origin: 'https://localhost:8443' }, HTTPS)).toBe('ok');
    expect(status({ host, secFetchSite: 'none' }, HTTPS)).toBe('ok');
  });

  it('answers 421 before 403 when both are wrong', () => {
    expect(status({ host: 'attacker.example', origin: 'https://attacker.example' }, HTTPS)).toBe(421);
  });
});

describe('options', () => {
  it('throws on a port or scheme the service cannot have', () => {
    expect(() => checkRequest({ host: 'localhost' }, { ...HTTP, port: 0 })).toThrow(RangeError);
    expect(() => checkRequest({ host: 'localhost' }, { ...HTTP, scheme: 'ftp' as 'http' })).toThrow(
      RangeError,
    );
  });

  it('parses configured names: trimmed, lower case, de-duplicated', () => {
    expect(parseAllowedHosts('')).toEqual([]);
    expect(parseAllowedHosts(' Partner.Test , partner.test,10.0.0.5,[fe80::1]')).toEqual([
      'partner.test',
      '10.0.0.5',
      '[fe80::1]',
    ]);
    expect(parseAllowedHosts(['a.test'])).toEqual(['a.test']);
  });

  it.each([
    'partner.test:8080',
    '*.test',
    'partner.test.',
    'a,,b',
    'fe80::1',
    'bad name',
    'https://a.test',
    'a/b',
  ])('refuses the configured name list %j', (value) =>
    expect(() => parseAllowedHosts(value)).toThrow(AllowedHostsError),
  );

  it('tells loopback addresses from others', () => {
    for (const address of ['127.0.0.1', '127.8.9.10', '::1', '[::1]', '::ffff:127.0.0.1', 'localhost'])
      expect(isLoopbackAddress(address)).toBe(true);
    for (const address of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '127.example', 'localhost.'])
      expect(isLoopbackAddress(address)).toBe(false);
  });
});
