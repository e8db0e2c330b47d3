import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createCertificateAuthority,
  createSelfSignedCertificate,
  createSelfSignedCertificateWithSigner,
} from './generate';
import { createCsr, createCsrWithSigner, inspectCsr, signCsr } from './csr';
import { CertificateError } from './errors';
import { fileKeySigner, type KeySigner, type SignatureAlgorithm } from './key-signer';
import { assembleSigned, certificateBody, forgePublicKey, baseCertificate } from './x509-builder';

const dir = mkdtempSync(join(tmpdir(), 'certflow-x509-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const keyPem = generateKeyPairSync('rsa', { modulusLength: 2048 })
  .privateKey.export({ type: 'pkcs8', format: 'pem' })
  .toString();

/** A signer that records what it was asked to sign (the key stays the file signer's). */
function recordingSigner(
  inner: KeySigner,
): KeySigner & { calls: { algorithm: SignatureAlgorithm; data: Buffer; signature: Buffer }[] } {
  const calls: { algorithm: SignatureAlgorithm; data: Buffer; signature: Buffer }[] = [];
  return {
    kind: 'pkcs11',
    publicKey: inner.publicKey,
    description: 'pkcs11:token=test;object=recording',
    calls,
    async sign(algorithm, data) {
      const signature = await inner.sign(algorithm, data);
      calls.push({ algorithm, data, signature });
      return signature;
    },
  };
}

function openssl(args: string[], pem: string): { status: number | null; out: string } {
  const file = join(dir, `${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(file, pem);
  const run = spawnSync('openssl', [...args, '-in', file], { encoding: 'utf8' });
  return { status: run.status, out: `${run.stdout}${run.stderr}` };
}

/** The extensions and subject as openssl prints them: what must be the same on both paths. */
function certificateShape(pem: string): string {
  return execFileSync(
    'openssl',
    ['x509', '-noout', '-subject', '-issuer', '-ext', 'basicConstraints,keyUsage,extendedKeyUsage'],
    {
      input: pem,
      encoding: 'utf8',
    },
  );
}

function requestedExtensions(pem: string): string {
  const text = openssl(['req', '-noout', '-text'], pem).out;
  return text.slice(
    text.indexOf('Requested Extensions'),
    text.indexOf('Signature Algorithm', text.indexOf('Requested Extensions')),
  );
}

describe('certificates signed through a KeySigner', () => {
  it('are the certificate createSelfSignedCertificate makes, signed by the signer, accepted by node and openssl', async () => {
    const signer = recordingSigner(fileKeySigner(keyPem, '/srv/partner/partner.key.pem'));
    const pem = await createSelfSignedCertificateWithSigner(signer, {
      commonName: 'contoso-partner',
      organization: 'Contoso',
      days: 30,
    });
    const x509 = new X509Certificate(pem);
    expect(x509.subject).toBe('CN=contoso-partner\nO=Contoso');
    expect(x509.issuer).toBe(x509.subject);
    expect(x509.publicKey.export({ format: 'jwk' })).toEqual(
      createPublicKey(keyPem).export({ format: 'jwk' }),
    );
    expect(x509.verify(x509.publicKey)).toBe(true);
    expect(x509.ca).toBe(false);
    expect(Math.round((Date.parse(x509.validTo) - Date.now()) / 86_400_000)).toBe(30);
    // the signer was asked once, for RS256 over the TBSCertificate, and its answer is the signature
    expect(signer.calls.map((c) => c.algorithm)).toEqual(['RS256']);
    const parsed = forge.pki.certificateFromPem(pem);
    expect(
      Buffer.from(forge.asn1.toDer(parsed.tbsCertificate).getBytes(), 'binary').equals(signer.calls[0]!.data),
    ).toBe(true);
    expect(Buffer.from(parsed.signature as string, 'binary').equals(signer.calls[0]!.signature)).toBe(true);
    expect(parsed.signatureOid).toBe(forge.pki.oids.sha256WithRSAEncryption);

    const text = openssl(['x509', '-noout', '-text'], pem);
    expect(text.status).toBe(0);
    expect(text.out).toMatch(/Signature Algorithm: sha256WithRSAEncryption/);
    expect(text.out).toMatch(/TLS Web Client Authentication/);
    const sync = createSelfSignedCertificate({
      commonName: 'contoso-partner',
      organization: 'Contoso',
      days: 30,
    });
    expect(certificateShape(pem)).toBe(certificateShape(sync.certificatePem));
    expect(openssl(['x509', '-noout', '-text'], sync.certificatePem).status).toBe(0);
    expect(
      new X509Certificate(sync.certificatePem).checkPrivateKey(createPrivateKey(sync.privateKeyPem)),
    ).toBe(true);
  });

  it('a signature that does not verify is refused, and would have made a certificate nobody accepts', async () => {
    const good = fileKeySigner(keyPem, '/srv/partner/partner.key.pem');
    const wrong: KeySigner = {
      ...good,
      description: 'pkcs11:token=test;object=wrong',
      sign: async (algorithm, data) => {
        const signature = await good.sign(algorithm, data);
        signature[signature.length - 1]! ^= 0x01;
        return signature;
      },
    };
    const refused = await createSelfSignedCertificateWithSigner(wrong, { commonName: 'x' }).catch(
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(CertificateError);
    expect((refused as CertificateError).code).toBe('ERR_CERT_KEY_MISMATCH');
    expect((refused as CertificateError).message).toMatch(/pkcs11:token=test;object=wrong does not verify/);
    await expect(createCsrWithSigner(wrong, { commonName: 'x' })).rejects.toThrow(/does not verify/);

    // without the check: the same bytes assembled around a wrong signature do not verify
    const tbs = certificateBody(baseCertificate(forgePublicKey(good.publicKey), {}));
    const bad = await wrong.sign('RS256', tbs.der);
    const badPem = assembleSigned(tbs, bad);
    expect(new X509Certificate(badPem).verify(good.publicKey)).toBe(false);
    const right = assembleSigned(tbs, await good.sign('RS256', tbs.der));
    expect(new X509Certificate(right).verify(good.publicKey)).toBe(true);
  });

  it('a signer whose key is not its public key is refused', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    const mismatched: KeySigner = { ...fileKeySigner(keyPem, '/srv/partner/a.pem'), publicKey: other };
    await expect(
      createSelfSignedCertificateWithSigner(mismatched, { commonName: 'x' }),
    ).rejects.toMatchObject({
      code: 'ERR_CERT_KEY_MISMATCH',
    });
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    await expect(
      createSelfSignedCertificateWithSigner({ ...mismatched, publicKey: ec }, { commonName: 'x' }),
    ).rejects.toMatchObject({
      code: 'ERR_KEY_MALFORMED',
    });
    await expect(createSelfSignedCertificateWithSigner(mismatched, { commonName: ' ' })).rejects.toThrow(
      /common name/,
    );
  });
});

describe('CSRs signed through a KeySigner', () => {
  it('have the subject and extensions of createCsr and verify with openssl req -verify', async () => {
    const signer = recordingSigner(fileKeySigner(keyPem, '/srv/partner/partner.key.pem'));
    const csrPem = await createCsrWithSigner(signer, {
      commonName: 'contoso-partner',
      organization: 'Contoso',
    });
    expect(signer.calls.map((c) => c.algorithm)).toEqual(['RS256']);
    expect(inspectCsr(csrPem)).toEqual({ commonName: 'contoso-partner', verified: true });
    expect(openssl(['req', '-verify', '-noout'], csrPem).out).toMatch(/verify OK/);
    const same = createCsr({ commonName: 'contoso-partner', organization: 'Contoso', privateKeyPem: keyPem });
    expect(openssl(['req', '-noout', '-subject'], csrPem).out).toBe(
      openssl(['req', '-noout', '-subject'], same.csrPem).out,
    );
    expect(requestedExtensions(csrPem)).toMatch(
      /Digital Signature, Key Encipherment[\s\S]*TLS Web Client Authentication/,
    );
    expect(requestedExtensions(csrPem)).toBe(requestedExtensions(same.csrPem));
    expect(openssl(['req', '-verify', '-noout'], same.csrPem).out).toMatch(/verify OK/);

    // a CA signs it; the certificate carries the signer's key
    const ca = createCertificateAuthority({ commonName: 'partner CA' });
    const issued = new X509Certificate(signCsr(ca, csrPem, { days: 30 }));
    expect(issued.verify(new X509Certificate(ca.certificatePem).publicKey)).toBe(true);
    expect(issued.publicKey.export({ format: 'jwk' })).toEqual(signer.publicKey.export({ format: 'jwk' }));
  });

  it('a CSR whose signature is wrong fails openssl req -verify', async () => {
    const good = fileKeySigner(keyPem, '/srv/partner/partner.key.pem');
    const csrPem = await createCsrWithSigner(good, { commonName: 'contoso-partner' });
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 1]! ^= 0x01; // the last byte of the signature BIT STRING
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    // OpenSSL 3.0's req -verify exits 0 either way; its verdict is the line it prints
    const verdict = openssl(['req', '-verify', '-noout'], tampered).out;
    expect(verdict).toMatch(/verify failure/);
    expect(verdict).not.toMatch(/verify OK/);
    expect(inspectCsr(tampered).verified).toBe(false);
    const ca = createCertificateAuthority({ commonName: 'partner CA' });
    expect(() => signCsr(ca, tampered)).toThrow(CertificateError);
  });
});
