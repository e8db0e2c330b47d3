import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import { afterAll, describe, expect, it } from 'vitest';
import { derToPem } from './certificate';
import { CertificateError } from './errors';
import {
  KEY_ENCRYPTION_ITERATIONS,
  MAX_KEY_ENCRYPTION_ITERATIONS,
  describeKeyEncryption,
  encryptPrivateKey,
} from './key-encryption';
import { readPrivateKey } from './private-key';

const dir = mkdtempSync(join(tmpdir(), 'certflow-kdf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const passphrase = 'correct horse battery staple';
const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const pkcs8 = key.export({ type: 'pkcs8', format: 'pem' }).toString();
const encrypted = encryptPrivateKey(pkcs8, passphrase);

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

function derOf(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
}

function pemOf(der: Buffer): string {
  return derToPem(der, 'ENCRYPTED PRIVATE KEY');
}

/** describeKeyEncryption's answer, or the CertificateError's code; anything else fails the test. */
function describeOrCode(text: string): unknown {
  try {
    return describeKeyEncryption(text);
  } catch (err) {
    if (err instanceof CertificateError) return err.code;
    throw err;
  }
}

describe('encryptPrivateKey', () => {
  it('writes PBES2 with PBKDF2-HMAC-SHA256, 600,000 iterations, a 16-byte salt and AES-256-CBC (as openssl reads it)', () => {
    expect(KEY_ENCRYPTION_ITERATIONS).toBe(600_000);
    const parsed = execFileSync('openssl', ['asn1parse', '-in', file('k.pem', encrypted)], {
      encoding: 'utf8',
    });
    const lines = parsed.split('\n');
    const objects = lines.filter((l) => l.includes('OBJECT')).map((l) => l.split(':').at(-1));
    expect(objects).toEqual(['PBES2', 'PBKDF2', 'hmacWithSHA256', 'aes-256-cbc']);
    expect(lines.find((l) => l.includes('INTEGER'))).toMatch(/:0927C0$/); // 600000
    const octets = lines.filter((l) => l.includes('OCTET STRING')).map((l) => /\sl= *(\d+)/.exec(l)![1]);
    expect(octets.slice(0, 2)).toEqual(['16', '16']); // salt, then IV
    expect(describeKeyEncryption(encrypted)).toEqual({
      scheme: 'PBES2',
      kdf: 'PBKDF2',
      prf: 'hmacWithSHA256',
      iterations: 600_000,
      cipher: 'aes-256-cbc',
      strong: true,
    });
  });

  it('is read back by readPrivateKey and by openssl pkcs8; a wrong passphrase is ERR_WRONG_PASSWORD', () => {
    expect(readPrivateKey(encrypted, passphrase)).toBe(pkcs8);
    const byOpenssl = execFileSync(
      'openssl',
      ['pkcs8', '-in', file('o.pem', encrypted), '-passin', 'env:CERTFLOW_TEST_PASS'],
      { encoding: 'utf8', env: { ...process.env, CERTFLOW_TEST_PASS: passphrase } },
    );
    expect(byOpenssl).toBe(pkcs8);
    const wrong = (() => {
      try {
        return readPrivateKey(encrypted, 'not the passphrase');
      } catch (err) {
        return (err as CertificateError).code;
      }
    })();
    expect(wrong).toBe('ERR_WRONG_PASSWORD');
  });

  it('uses a new salt and IV each time, and re-encrypts an encrypted key with its current passphrase', () => {
    const again = encryptPrivateKey(pkcs8, passphrase);
    expect(again).not.toBe(encrypted);
    const rekeyed = encryptPrivateKey(encrypted, 'a brand new passphrase', passphrase);
    expect(readPrivateKey(rekeyed, 'a brand new passphrase')).toBe(pkcs8);
    expect(() => encryptPrivateKey(encrypted, 'a brand new passphrase')).toThrow(/passphrase is needed/);
    expect(() => encryptPrivateKey(pkcs8, 'short')).toThrow(/8 characters/);
  });

  it('is read by Java 17 (EncryptedPrivateKeyInfo, PBEWithHmacSHA256AndAES_256)', (ctx) => {
    if (spawnSync('java', ['-version']).error) {
      console.log(
        'skipped: no java on this machine (Java reads PBES2/PBKDF2WithHmacSHA256/AES_256 from JDK 17)',
      );
      ctx.skip();
    }
    const source = file(
      'ReadKey.java',
      `import java.nio.file.*; import java.security.*; import java.security.interfaces.*; import java.util.*; import javax.crypto.*; import javax.crypto.spec.*;
public class ReadKey {
  public static void main(String[] args) throws Exception {
    String pem = Files.readString(Path.of(args[0])).replaceAll("-----[^-]+-----|\\\\s", "");
    EncryptedPrivateKeyInfo info = new EncryptedPrivateKeyInfo(Base64.getDecoder().decode(pem));
    String algorithm = info.getAlgParameters().toString();
    SecretKey secret = SecretKeyFactory.getInstance(algorithm).generateSecret(new PBEKeySpec(System.getenv("CERTFLOW_TEST_PASS").toCharArray()));
    Cipher cipher = Cipher.getInstance(algorithm);
    cipher.init(Cipher.DECRYPT_MODE, secret, info.getAlgParameters());
    RSAPrivateCrtKey key = (RSAPrivateCrtKey) KeyFactory.getInstance("RSA").generatePrivate(info.getKeySpec(cipher));
    System.out.println(algorithm + " " + key.getModulus().toString(16));
  }
}
`,
    );
    const out = execFileSync('java', [source, file('j.pem', encrypted)], {
      encoding: 'utf8',
      env: { ...process.env, CERTFLOW_TEST_PASS: passphrase },
      timeout: 60_000,
    });
    const modulus = Buffer.from(key.export({ format: 'jwk' }).n!, 'base64url')
      .toString('hex')
      .replace(/^0+/, '');
    expect(out.trim()).toBe(`PBEWithHmacSHA256AndAES_256 ${modulus}`);
  }, 90_000);
});

describe('describeKeyEncryption', () => {
  it('reads the old files (node export: 2,048 iterations) and says they are not strong', () => {
    const old = key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase });
    const parsed = execFileSync('openssl', ['asn1parse', '-in', file('old.pem', old.toString())], {
      encoding: 'utf8',
    });
    expect(parsed).toMatch(/INTEGER +:0800\n/); // 2048, as openssl sees it
    expect(readPrivateKey(old.toString(), passphrase)).toBe(pkcs8);
    expect(describeKeyEncryption(old.toString())).toEqual({
      scheme: 'PBES2',
      kdf: 'PBKDF2',
      prf: 'hmacWithSHA256',
      iterations: 2048,
      cipher: 'aes-256-cbc',
      strong: false,
    });
  });

  it('names legacy schemes and weak parameters', () => {
    const pkcs1 = key.export({ type: 'pkcs1', format: 'pem', cipher: 'aes-256-cbc', passphrase }).toString();
    expect(describeKeyEncryption(pkcs1)).toEqual({ scheme: 'PEM Proc-Type', strong: false });
    const pbes1 = execFileSync(
      'openssl',
      ['pkcs8', '-topk8', '-v1', 'PBE-SHA1-3DES', '-in', file('p.pem', pkcs8), '-passout', 'pass:12345678'],
      { encoding: 'utf8' },
    );
    expect(describeKeyEncryption(pbes1)).toEqual({
      scheme: 'PKCS#12 pbeWithSHAAnd3-KeyTripleDES-CBC',
      strong: false,
    });
    const sha1 = execFileSync(
      'openssl',
      [
        'pkcs8',
        '-topk8',
        '-v2',
        'aes-128-cbc',
        '-v2prf',
        'hmacWithSHA1',
        '-iter',
        '700000',
        '-in',
        file('s.pem', pkcs8),
        '-passout',
        'pass:12345678',
      ],
      { encoding: 'utf8' },
    );
    expect(describeKeyEncryption(sha1)).toEqual({
      scheme: 'PBES2',
      kdf: 'PBKDF2',
      prf: 'hmacWithSHA1',
      iterations: 700_000,
      cipher: 'aes-128-cbc',
      strong: false,
    });
    const scrypt = execFileSync(
      'openssl',
      ['pkcs8', '-topk8', '-scrypt', '-in', file('sc.pem', pkcs8), '-passout', 'pass:12345678'],
      { encoding: 'utf8' },
    );
    expect(describeKeyEncryption(scrypt)).toEqual({ scheme: 'PBES2 with scrypt', strong: false });
    expect(describeKeyEncryption(pkcs8)).toBeUndefined();
    expect(
      describeKeyEncryption(createPrivateKey(pkcs8).export({ type: 'pkcs1', format: 'pem' }).toString()),
    ).toBeUndefined();
  });

  it('refuses to decrypt a key claiming more PBKDF2 iterations than MAX_KEY_ENCRYPTION_ITERATIONS, before running the KDF', () => {
    // The same file with its iteration count rewritten to 2^31 - 1 (forge re-encodes the lengths):
    // OpenSSL would spend hours on it.
    const info = forge.asn1.fromDer(derOf(encrypted).toString('binary'));
    const pbkdf2Params = (
      ((info.value as forge.asn1.Asn1[])[0]!.value as forge.asn1.Asn1[])[1]!.value as forge.asn1.Asn1[]
    )[0]!.value as forge.asn1.Asn1[];
    const count = (pbkdf2Params[1]!.value as forge.asn1.Asn1[])[1]!;
    expect(Buffer.from(count.value as string, 'binary').readUIntBE(0, 3)).toBe(KEY_ENCRYPTION_ITERATIONS);
    count.value = Buffer.from([0x7f, 0xff, 0xff, 0xff]).toString('binary');
    const hostile = pemOf(Buffer.from(forge.asn1.toDer(info).getBytes(), 'binary'));
    expect(describeKeyEncryption(hostile)).toMatchObject({ iterations: 2 ** 31 - 1, strong: true });
    let error: unknown;
    try {
      readPrivateKey(hostile, passphrase);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(CertificateError);
    expect(error).toMatchObject({ code: 'ERR_KEY_MALFORMED' });
    expect((error as Error).message).toMatch(/2,147,483,647 PBKDF2 iterations, more than the 10,000,000/);
    expect(MAX_KEY_ENCRYPTION_ITERATIONS).toBe(10_000_000);
    // A Proc-Type line above the block must not hide it: OpenSSL reads the block all the same.
    expect(() => readPrivateKey(`Proc-Type: 4,ENCRYPTED\n${hostile}`, passphrase)).toThrow(
      /2,147,483,647 PBKDF2 iterations/,
    );
    expect(describeKeyEncryption(`Proc-Type: 4,ENCRYPTED\nDEK-Info: x\n\n${hostile}`)).toMatchObject({
      iterations: 2 ** 31 - 1,
    });
  }, 20_000);

  it("refuses a key encrypted with scrypt (its cost is the file's to choose) with the command that converts it", () => {
    const dir = mkdtempSync(join(tmpdir(), 'certs-scrypt-'));
    try {
      writeFileSync(join(dir, 'k.pem'), pkcs8, { mode: 0o600 });
      const made = spawnSync(
        'openssl',
        ['pkcs8', '-topk8', '-in', join(dir, 'k.pem'), '-scrypt', '-passout', `pass:${passphrase}`],
        {
          encoding: 'utf8',
        },
      );
      expect(made.status, made.stderr).toBe(0);
      expect(describeKeyEncryption(made.stdout)).toMatchObject({
        scheme: 'PBES2 with scrypt',
        strong: false,
      });
      expect(() => readPrivateKey(made.stdout, passphrase)).toThrow(
        /encrypted with scrypt, which certflow does not open: encrypt it with PBKDF2 first \(openssl pkcs8 -topk8/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers hostile input with a CertificateError, never another exception', () => {
    const der = derOf(encrypted);
    expect(describeOrCode('hello')).toBe('ERR_KEY_MALFORMED');
    expect(
      describeOrCode(pemOf(Buffer.alloc(0)).replace('\n\n', '\n@@@\n')), // not base64
    ).toBe('ERR_KEY_MALFORMED');
    expect(describeOrCode(pemOf(Buffer.alloc(0)))).toBe('ERR_KEY_MALFORMED');
    expect(describeOrCode(pemOf(der.subarray(0, der.length / 2)))).toBe('ERR_KEY_MALFORMED'); // truncated
    // a SEQUENCE claiming 4 GiB, and one claiming a length of 127 bytes of length
    expect(describeOrCode(pemOf(Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x00])))).toBe(
      'ERR_KEY_MALFORMED',
    );
    expect(describeOrCode(pemOf(Buffer.concat([Buffer.from([0x30, 0xff]), Buffer.alloc(127, 0xff)])))).toBe(
      'ERR_KEY_MALFORMED',
    );
    // 100,000 nested SEQUENCEs
    const depth = 100_000;
    const nested = Buffer.concat([
      ...Array.from({ length: depth }, () => Buffer.from([0x30, 0x80])),
      Buffer.alloc(depth * 2),
    ]);
    expect(describeOrCode(pemOf(nested))).toBe('ERR_KEY_MALFORMED');

    // the iteration count: 0, negative, absurdly large (each rebuilt from the real structure)
    const at = der.indexOf(Buffer.from([0x02, 0x03, 0x09, 0x27, 0xc0])); // INTEGER 600000
    expect(at).toBeGreaterThan(0);
    const withCount = (bytes: number[]) => {
      const copy = Buffer.from(der);
      copy.set(bytes, at + 2);
      return pemOf(copy);
    };
    expect(describeOrCode(withCount([0, 0, 0]))).toBe('ERR_KEY_MALFORMED');
    expect(describeOrCode(withCount([0xff, 0xff, 0xff]))).toBe('ERR_KEY_MALFORMED');
    expect(describeOrCode(withCount([0x7f, 0xff, 0xff]))).toMatchObject({
      iterations: 0x7fffff,
      strong: true,
    });
    expect((describeOrCode(withCount([0x00, 0x00, 0x01])) as { iterations: number }).iterations).toBe(1);

    // every single-byte corruption and every truncation: a description or a CertificateError
    const answers = new Set<string>();
    for (let i = 0; i < der.length; i++) {
      for (const value of [0x00, 0xff, der[i]! ^ 0x80, randomBytes(1)[0]!]) {
        const copy = Buffer.from(der);
        copy[i] = value;
        answers.add(JSON.stringify(describeOrCode(pemOf(copy))));
      }
      answers.add(JSON.stringify(describeOrCode(pemOf(der.subarray(0, i)))));
    }
    expect(answers.has('"ERR_KEY_MALFORMED"')).toBe(true);
  });
});
