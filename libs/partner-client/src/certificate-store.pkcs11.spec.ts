/**
 * The partner's key inside a real PKCS#11 token (SoftHSM2, a fresh token per file): made there,
 * never in a file, used through the KeySigner seam, and MSAL's client assertion signed through
 * it against the real Entra ID emulator. Wrong settings are clear errors that change nothing.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeProtectedHeader } from 'jose';
import { createCertificateAuthority, parseCertificate, signCsr, verifySignature } from '@certflow/certs';
import { parsePkcs11Uri, Pkcs11Token } from '@certflow/pkcs11';
import { createSoftHsmToken, rejectionOf, tempDir, type SoftHsmToken } from '@certflow/testing';
import type { GraphClient, RunningEmulator } from '@certflow/entra-emulator';
import { CertificateStore } from './certificate-store';
import { storeError } from './store.test-helpers';
import { summarize } from './certificate-summary';
import { CertificateTokenClient } from './certificate-token-client';
import { startProvisionedEmulator } from './emulator.test-helpers';
import { HttpsNetworkClient, type DecodedAssertion } from './https-network-client';

let hsm: SoftHsmToken;
let env: Record<string, string>;
const dir = tempDir();

beforeAll(() => {
  hsm = createSoftHsmToken({ label: 'partner-store' });
  // SoftHSM2 reads its configuration from the process environment when the module starts.
  process.env['SOFTHSM2_CONF'] = hsm.conf;
  env = { PARTNER_PKCS11_MODULE: hsm.modulePath, PARTNER_PKCS11_PIN: hsm.pin };
});
afterAll(() => {
  hsm?.remove();
  dir.remove();
});

/** Whether the token holds a key with this label (logged in with the right PIN). */
function tokenHasKey(label: string): boolean {
  const uri = parsePkcs11Uri(`pkcs11:token=${hsm.label};object=${label};type=private`);
  const token = Pkcs11Token.open(uri, { modulePath: hsm.modulePath, pin: hsm.pin });
  try {
    return token.hasKey(uri);
  } finally {
    token.close();
  }
}

describe('a key made inside a PKCS#11 token', () => {
  it('cert create --key-store: the key is sensitive and not extractable, only its URI is on disk, and it signs RS256 and PS256', async () => {
    const store = new CertificateStore(join(dir.path, 'created'));
    const created = await store.createInToken({
      keyStore: `pkcs11:token=${hsm.label};object=partner-2026`,
      commonName: 'hsm-partner',
      keySize: 3072,
      env,
    });
    try {
      expect(created.privateKeyPem).toBeUndefined();
      expect(created.privateKeyPath).toBeUndefined();
      expect(created.signer.kind).toBe('pkcs11');
      expect(created.keyUri).toMatch(
        /^pkcs11:token=partner-store;serial=[0-9a-f]+;object=partner-2026;id=(%[0-9A-F]{2}){16};type=private$/,
      );
      const generationDir = join(store.directory, 'generations', created.generation!);
      expect(readdirSync(generationDir).sort()).toEqual([
        'partner.cer',
        'partner.crt.pem',
        'partner.key.p11',
      ]);
      const reference = readFileSync(join(generationDir, 'partner.key.p11'), 'utf8');
      expect(reference).not.toContain(hsm.pin);
      expect(reference).not.toMatch(/PRIVATE KEY/);
      expect(summarize(created).keyProtection).toMatchObject({
        store: 'pkcs11',
        attributes: {
          sensitive: true,
          extractable: false,
          neverExtractable: true,
          alwaysSensitive: true,
          modulusBits: 3072,
        },
      });
      // The certificate was signed through the token, by the key it certifies.
      expect(new X509Certificate(created.certificate.der).verify(created.certificate.publicKey)).toBe(true);
      const data = Buffer.from('signed inside the token');
      for (const alg of ['RS256', 'PS256'] as const)
        expect(
          verifySignature(created.certificate.publicKey, alg, data, await created.signer.sign(alg, data)),
        ).toBe(true);
    } finally {
      created.close();
    }
    const again = store.read({ env });
    expect(again.certificate.der.equals(created.certificate.der)).toBe(true);
    again.close();
  });

  it('a wrong PIN, a missing module or a taken label is a clear error, and nothing is created', async () => {
    const target = join(dir.path, 'refused');
    const store = new CertificateStore(target);
    const keyStore = `pkcs11:token=${hsm.label};object=refused-key`;
    const wrongPin = await rejectionOf(
      store.createInToken({ keyStore, env: { ...env, PARTNER_PKCS11_PIN: '000000' } }),
    );
    expect(wrongPin).toMatchObject({ code: 'ERR_PKCS11_PIN_INCORRECT' });
    expect((wrongPin as Error).message).not.toContain('000000');
    const noModule = await rejectionOf(
      store.createInToken({ keyStore, env: { ...env, PARTNER_PKCS11_MODULE: '/nonexistent/libpkcs11.so' } }),
    );
    expect(noModule).toMatchObject({ code: 'ERR_PKCS11_MODULE' });
    expect((noModule as Error).message).toContain('/nonexistent/libpkcs11.so');
    const noToken = await rejectionOf(
      store.createInToken({ keyStore: 'pkcs11:token=nowhere;object=x', env }),
    );
    expect(noToken).toMatchObject({ code: 'ERR_PKCS11_TOKEN_NOT_FOUND' });
    expect((noToken as Error).message).toContain(hsm.label);
    expect(existsSync(target)).toBe(false);
    expect(tokenHasKey('refused-key')).toBe(false);

    // A label already in the token: refused, and the partner's certificate in use is untouched.
    const first = await store.createInToken({ keyStore, env });
    first.close();
    const taken = await rejectionOf(store.createInToken({ keyStore, env, force: true }));
    expect(taken).toMatchObject({ code: 'ERR_PKCS11_OBJECT_EXISTS' });
    const still = store.load(new Date(), { env });
    expect(still.certificate.der.equals(first.certificate.der)).toBe(true);
    still.close();
    expect(store.generations()).toEqual([first.generation]);
  });

  it('reading names what is wrong: no PIN, a wrong PIN, a key gone from the token', async () => {
    const store = new CertificateStore(join(dir.path, 'read'));
    const created = await store.createInToken({ keyStore: `pkcs11:token=${hsm.label};object=read-key`, env });
    created.close();
    const noPin = storeError(() => store.read({ env: { PARTNER_PKCS11_MODULE: hsm.modulePath } }));
    expect(noPin.code).toBe('ERR_PKCS11_PIN_MISSING');
    expect(noPin.message).toMatch(/PARTNER_PKCS11_PIN/);
    expect(noPin.message).toContain('partner.key.p11');
    expect(storeError(() => store.read({ env: { ...env, PARTNER_PKCS11_PIN: '999999' } })).code).toBe(
      'ERR_PKCS11_PIN_INCORRECT',
    );
    const token = Pkcs11Token.open(parsePkcs11Uri(created.keyUri!), {
      modulePath: hsm.modulePath,
      pin: hsm.pin,
    });
    expect(token.deleteKeyPair(parsePkcs11Uri(created.keyUri!))).toBe(true);
    token.close();
    const gone = storeError(() => store.read({ env }));
    expect(gone.code).toBe('ERR_PKCS11_OBJECT_NOT_FOUND');
    expect(gone.message).toContain('read-key');
  });

  it('the module and PIN source come from configuration only: never stored, and a key reference naming them is refused before any module is loaded', async () => {
    const pinFile = join(dir.path, 'pin');
    writeFileSync(pinFile, `${hsm.pin}\n`, { mode: 0o600 });
    const keyStore = `pkcs11:token=${hsm.label};object=configured?module-path=${hsm.modulePath}&pin-source=file:${pinFile}`;
    const store = new CertificateStore(join(dir.path, 'configured'));
    const created = await store.createInToken({ keyStore, env: {} });
    created.close();
    const reference = readFileSync(join(store.directory, 'partner.key.p11'), 'utf8');
    expect(reference).not.toMatch(/module-path|pin-source|\?/);
    // Later commands get the module and the PIN source from PARTNER_KEY_STORE, as configured.
    store.read({ env: { PARTNER_KEY_STORE: keyStore } }).close();
    // Someone who can write the directory points the reference at a library of their choice.
    const file = join(store.directory, 'generations', created.generation!, 'partner.key.p11');
    writeFileSync(file, `${reference.trim()}?module-path=/srv/partner/evil.so\n`, { mode: 0o600 });
    const refused = storeError(() => store.read({ env }));
    expect(refused.code).toBe('ERR_PKCS11_URI');
    expect(refused.message).toMatch(
      /names a PKCS#11 module or PIN source; certflow takes those from its configuration only/,
    );
    writeFileSync(file, `${reference.trim()}?pin-source=file:/etc/hostname\n`, { mode: 0o600 });
    expect(storeError(() => store.read({ env })).code).toBe('ERR_PKCS11_URI');
  });

  it('cert csr --key-store then import of the CA-issued certificate uses the key in the token', async () => {
    const store = new CertificateStore(join(dir.path, 'csr'));
    const { csrPem, pendingKeyPath } = await store.createCsrInToken({
      keyStore: `pkcs11:token=${hsm.label};object=csr-key`,
      commonName: 'ca-issued-hsm',
      env,
    });
    expect(pendingKeyPath.endsWith('partner.pending.key.p11')).toBe(true);
    const ca = createCertificateAuthority({ commonName: 'Partner CA' });
    // A certificate for another key is refused before anything changes.
    const otherStore = new CertificateStore(join(dir.path, 'other'));
    const other = otherStore.create({ commonName: 'other' });
    const mismatch = storeError(() => store.import({ certificate: other.certificate.pem, env }));
    expect(mismatch.code).toBe('ERR_CERT_KEY_MISMATCH');
    expect(store.exists()).toBe(false);
    const imported = store.import({ certificate: signCsr(ca, csrPem, { days: 30 }), env });
    expect(imported.keyUri).toContain('object=csr-key');
    expect(imported.certificate.issuer).toBe('CN=Partner CA');
    expect(existsSync(pendingKeyPath)).toBe(false);
    imported.close();
  });
});

describe('MSAL with a key in the token, against the Entra ID emulator', () => {
  const API_URI = 'api://certflow-pkcs11-store-test';
  let emulator: RunningEmulator;
  let caPem: string;
  let partner: { appId: string; objectId: string };

  beforeAll(async () => {
    let graph: GraphClient;
    ({ emulator, caPem, graph, partner } = await startProvisionedEmulator(join(dir.path, 'emulator'), {
      name: 'pkcs11 store test',
      apiIdentifierUri: API_URI,
    }));
    const store = new CertificateStore(join(dir.path, 'msal'));
    const created = await store.createInToken({ keyStore: `pkcs11:token=${hsm.label};object=msal-key`, env });
    created.close();
    await graph.addCertificate(partner.objectId, created.certificate.der, 'pkcs11 store test');
    graph.close();
  }, 120_000);
  afterAll(async () => {
    await emulator?.close();
  });

  it('gets a token: the client assertion (PS256, x5t#S256) is signed through the token by MSAL clientAssertion', async () => {
    const credential = new CertificateStore(join(dir.path, 'msal')).load(new Date(), { env });
    const assertions: DecodedAssertion[] = [];
    const network = new HttpsNetworkClient({
      ca: caPem,
      observer: { onResponse: (e, status) => status === 200 && e.assertion && assertions.push(e.assertion) },
    });
    try {
      const client = new CertificateTokenClient({
        entraInstance: emulator.url,
        tenantId: emulator.tenantId,
        clientId: partner.appId,
        scope: `${API_URI}/.default`,
        credential,
        networkClient: network,
      });
      const token = await client.getToken();
      expect(token.source).toBe('network');
      expect(decodeProtectedHeader(token.accessToken).alg).toBe('RS256');
      expect(assertions).toHaveLength(1);
      expect(assertions[0]!.header).toEqual({
        alg: 'PS256',
        typ: 'JWT',
        'x5t#S256': credential.certificate.thumbprints.sha256Base64Url,
      });
      expect(assertions[0]!.claims).toMatchObject({ iss: partner.appId, sub: partner.appId });
      // Each token request from the network signs a new assertion in the token.
      await client.fetchToken({ skipCache: true });
      expect(assertions).toHaveLength(2);
      expect(assertions[1]!.claims['jti']).not.toBe(assertions[0]!.claims['jti']);
    } finally {
      network.close();
      credential.close();
    }
  });

  it('a key in the token whose certificate is not registered gets AADSTS700027 from MSAL', async () => {
    const store = new CertificateStore(join(dir.path, 'unregistered'));
    const credential = await store.createInToken({
      keyStore: `pkcs11:token=${hsm.label};object=unregistered`,
      env,
    });
    const network = new HttpsNetworkClient({ ca: caPem });
    try {
      const client = new CertificateTokenClient({
        entraInstance: emulator.url,
        tenantId: emulator.tenantId,
        clientId: partner.appId,
        scope: `${API_URI}/.default`,
        credential,
        networkClient: network,
      });
      expect(await rejectionOf(client.getToken())).toMatchObject({ aadsts: '700027' });
    } finally {
      network.close();
      credential.close();
    }
    expect(parseCertificate(readFileSync(join(store.directory, 'partner.cer'))).subject).toBe(
      'CN=certflow-partner',
    );
  });
});
