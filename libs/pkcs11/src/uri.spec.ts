import { describe, expect, it } from 'vitest';
import { Pkcs11Error, formatPkcs11Uri, parsePkcs11Uri, type Pkcs11Uri } from './index';

function refusal(text: string): Pkcs11Error {
  try {
    parsePkcs11Uri(text);
  } catch (err) {
    if (err instanceof Pkcs11Error) return err;
    throw err;
  }
  throw new Error(`${text} was accepted`);
}

describe('parsePkcs11Uri: the examples of RFC 7512 section 3', () => {
  it.each<[string, Pkcs11Uri]>([
    ['pkcs11:', {}],
    ['pkcs11:object=my-pubkey;type=public', { object: 'my-pubkey', type: 'public' }],
    [
      'pkcs11:object=my-key;type=private?pin-source=file:/etc/token',
      { object: 'my-key', type: 'private', pinSource: 'file:/etc/token' },
    ],
    [
      'pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;' +
        'object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin',
      {
        token: 'The Software PKCS#11 Softtoken',
        manufacturer: 'Snake Oil, Inc.',
        model: '1.0',
        object: 'my-certificate',
        type: 'cert',
        id: Buffer.from([0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91]),
        serial: '',
        pinSource: 'file:/etc/token_pin',
      },
    ],
    [
      'pkcs11:object=my-sign-key;type=private?module-name=mypkcs11',
      { object: 'my-sign-key', type: 'private', moduleName: 'mypkcs11' },
    ],
    [
      'pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1',
      { object: 'my-sign-key', type: 'private', modulePath: '/mnt/libmypkcs11.so.1' },
    ],
    [
      'pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert',
      { token: 'A name with a substring %;', object: 'my-certificate', type: 'cert' },
    ],
    [
      'pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert',
      { token: 'Name with a small A with acute: á', object: 'my-certificate', type: 'cert' },
    ],
  ])('%s', (text, expected) => {
    expect(parsePkcs11Uri(text)).toEqual(expected);
  });

  it.each([
    [
      'pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin',
      'pin-value is refused',
    ],
    ['pkcs11:slot-description=Sun%20Metaslot', "certflow does not select by 'slot-description'"],
    [
      'pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23',
      "certflow does not select by 'library-manufacturer'",
    ],
    [
      'pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;id=%01%02%03%Ba%dd%Ca%fe%04%05%06',
      "certflow does not select by 'library-version'",
    ],
    [
      'pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a?pin-source=file:/etc/token_pin&vendor-bbb=value-b',
      "unknown path attribute 'vendor-aaa'",
    ],
  ])('refuses, rather than ignores, what certflow would not act on: %s', (text, reason) => {
    const err = refusal(text);
    expect(err.code).toBe('ERR_PKCS11_URI');
    expect(err.message).toContain(reason);
  });
});

describe('parsePkcs11Uri: refusals', () => {
  it('pin-value says why and what to use instead, and never prints the PIN', () => {
    const err = refusal('pkcs11:token=partner;object=k?module-path=/srv/partner/lib.so&pin-value=s3cr3t-PIN');
    expect(err.message).toMatch(/shell history, process listings and logs/);
    expect(err.message).toContain('pin-source=file:');
    expect(err.message).toContain('PARTNER_PKCS11_PIN');
    expect(err.message).not.toContain('s3cr3t');
  });

  it.each([
    ['pkcs11:toekn=partner', "unknown path attribute 'toekn'; did you mean 'token'?"],
    ['pkcs11:objet=partner-2026', "did you mean 'object'?"],
    ['pkcs11:slotid=1', "did you mean 'slot-id'?"],
    [
      'pkcs11:object=k?pin-sorce=file:/srv/partner/pin',
      "unknown query attribute 'pin-sorce'; did you mean 'pin-source'?",
    ],
    ['pkcs11:object=k?modul-path=/srv/partner/lib.so', "did you mean 'module-path'?"],
    ['pkcs11:colour=blue', "unknown path attribute 'colour'; certflow accepts token, manufacturer"],
    ['pkcs11:object=a;object=b', "attribute 'object' appears more than once"],
    ['pkcs11:object=k?pin-source=/a&pin-source=/b', "attribute 'pin-source' appears more than once"],
    ['pkcs11:pin-source=/srv/partner/pin', "'pin-source' is a query attribute: write it after '?'"],
    ['pkcs11:?token=partner', "'token' is a path attribute: write it before '?'"],
    ['pkcs11:object=my key', 'object: a space must be percent-encoded'],
    ['pkcs11:object=a/b', "object: '/' must be percent-encoded"],
    ['pkcs11:object=a?module-path=/x&y', 'must be name=value'],
    ['pkcs11:object=100%', "'%' must be followed by two hexadecimal digits"],
    ['pkcs11:object=%zz', "'%' must be followed by two hexadecimal digits"],
    ['pkcs11:object=%C3%28', 'object is not valid UTF-8'],
    ['pkcs11:object=a%00b', 'object holds a control character once percent-decoded'],
    ['pkcs11:object=a%0Ab', 'object holds a control character once percent-decoded'],
    ['pkcs11:token=x%1B%5B31m', 'token holds a control character'],
    ['pkcs11:object=k;serial=%7F', 'serial holds a control character'],
    ['pkcs11:object=k?module-path=/srv/lib%0A.so', 'module-path holds a control character'],
    ['pkcs11:object=k?pin-source=/srv/pin%0D', 'pin-source holds a control character'],
    ['pkcs11:object=%C2%85', 'object holds a control character'],
    ['pkcs11:type=secret', 'type must be one of private, public, cert, secret-key, data'],
    ['pkcs11:slot-id=0x1', 'slot-id must be a decimal number'],
    ['pkcs11:object=k;', 'must be name=value'],
    ['pkcs11:object=k?module-path=', 'module-path must not be empty'],
    ['pkcs11:=x', 'must be name=value'],
    ['pkcs12:token=partner', "must start with 'pkcs11:'"],
    ['token=partner', "must start with 'pkcs11:'"],
  ])('%s', (text, reason) => {
    const err = refusal(text);
    expect(err.code).toBe('ERR_PKCS11_URI');
    expect(err.message).toContain(reason);
  });
});

describe('formatPkcs11Uri', () => {
  it('writes attributes in a fixed order, percent-encoding what needs it, the id byte by byte', () => {
    expect(
      formatPkcs11Uri({
        type: 'private',
        id: Buffer.from([0x00, 0xab, 0x7f]),
        object: 'partner 2026;a/b%',
        token: 'The Software PKCS#11 Softtoken',
        slotId: 7,
        pinSource: 'file:/srv/partner/pin with space',
        modulePath: '/usr/lib/softhsm/libsofthsm2.so',
      }),
    ).toBe(
      'pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;slot-id=7;object=partner%202026%3Ba%2Fb%25;id=%00%AB%7F;type=private' +
        '?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/srv/partner/pin%20with%20space',
    );
    expect(formatPkcs11Uri({})).toBe('pkcs11:');
  });

  it.each([
    'pkcs11:token=partner;object=partner-2026;type=private',
    'pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;serial=;model=1.0;object=my-certificate;id=%69%95%3E%5C%F4%BD%EC%91;type=cert?pin-source=file:/etc/token_pin',
    'pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=%E2%82%AC%26%3D?module-name=softhsm2',
    'pkcs11:slot-id=1115531945;id=%01?module-path=/srv/partner/lib%26more.so',
  ])('round-trips %s', (text) => {
    const parsed = parsePkcs11Uri(text);
    expect(formatPkcs11Uri(parsed)).toBe(text);
    expect(parsePkcs11Uri(formatPkcs11Uri(parsed))).toEqual(parsed);
  });
});
