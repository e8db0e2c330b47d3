/**
 * Rotation against the real emulator's Graph addKey/removeKey and token endpoint: the partner
 * registers its next certificate itself (proof signed by the current one, its own Graph token),
 * switches the running client without a restart, removes the old one; continuous calls never
 * fail. Interrupted rotations (an answer lost on the way back) are finished by a rerun, and the
 * keyId of a certificate whose addKey answer was lost is learned, or reported unknown, depending
 * on whether the partner may read its own application. (`cert rotate` killed at every step is
 * apps/partner-worker's cli-rotate-crash.spec.ts.)
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSelfSignedCertificate, parseCertificate, verifySignature } from '@certflow/certs';
import { parsePkcs11Uri, Pkcs11Token } from '@certflow/pkcs11';
import {
  GRAPH_APP_ID,
  GRAPH_ROLE_IDS,
  type GraphClient,
  type RunningEmulator,
} from '@certflow/entra-emulator';
import { createSoftHsmToken, rejectionOf, tempDir, type SoftHsmToken } from '@certflow/testing';
import { CertificateStore, type PartnerCredential } from './certificate-store';
import { CertificateTokenClient, TokenAcquisitionError } from './certificate-token-client';
import { readRotationConfig, type RotationConfig } from './config';
import { startProvisionedEmulator } from './emulator.test-helpers';
import { createProofOfPossession, isKeyCredentialOf, PartnerGraph, rotateWithGraph } from './graph-rotation';
import { HttpsNetworkClient } from './https-network-client';
import { rotateCertificate, RotationError, type RotationResult } from './rotation';
import { journalPath, readJournal, RotationJournalError } from './rotation-journal';
import { TokenCache } from './token-cache';

const API_URI = 'api://certflow-rotation-test';
const SCOPE = `${API_URI}/.default`;

/** Graph as it behaves when the connection drops after the request was processed: the answer never arrives. */
class AnswersLost extends PartnerGraph {
  lose: 'addKey' | 'removeKey' = 'addKey';
  override async addKey(...args: Parameters<PartnerGraph['addKey']>) {
    const outcome = await super.addKey(...args);
    if (this.lose === 'addKey') throw new Error('socket hang up (the answer to addKey was lost)');
    return outcome;
  }
  override async removeKey(...args: Parameters<PartnerGraph['removeKey']>) {
    const outcome = await super.removeKey(...args);
    if (this.lose === 'removeKey') throw new Error('socket hang up (the answer to removeKey was lost)');
    return outcome;
  }
}

describe('certificate rotation with Graph addKey/removeKey', () => {
  const dir = tempDir();
  let emulator: RunningEmulator;
  let admin: GraphClient;
  let partner: { appId: string; objectId: string };
  let caPem: string;
  const closers: (() => void)[] = [];

  beforeAll(async () => {
    ({
      emulator,
      caPem,
      graph: admin,
      partner,
    } = await startProvisionedEmulator(dir.path, {
      name: 'rotation test',
      apiIdentifierUri: API_URI,
      tokenLifetimeSeconds: 8,
    }));
  }, 120_000);

  afterAll(async () => {
    closers.forEach((c) => c());
    admin?.close();
    await emulator?.close();
    dir.remove();
  });

  function configFor(
    directory: string,
    app: { appId: string; objectId: string },
    extra: Record<string, string> = {},
  ): RotationConfig {
    writeFileSync(join(dir.path, 'ca.pem'), caPem);
    return readRotationConfig(
      {
        ENTRA_INSTANCE: emulator.url,
        PARTNER_TENANT_ID: emulator.tenantId,
        PARTNER_CLIENT_ID: app.appId,
        PARTNER_SCOPE: SCOPE,
        PARTNER_CERT_DIR: directory,
        PARTNER_CA_FILE: join(dir.path, 'ca.pem'),
        PARTNER_APP_OBJECT_ID: app.objectId,
        PARTNER_GRAPH_URL: emulator.graphUrl,
        ...extra,
      },
      dir.path,
    );
  }

  /** An application of its own with a registered certificate whose keyId is in partner.key-id. */
  async function newPartner(name: string, opts: { readsOwnApplication?: boolean } = {}) {
    const created = await admin.createApplication({ displayName: name });
    const sp = await admin.createServicePrincipal(created.appId);
    if (opts.readsOwnApplication) {
      const graphSp = await admin.findServicePrincipalByAppId(GRAPH_APP_ID);
      await admin.assignAppRole({
        principalId: sp.id,
        resourceId: graphSp!.id,
        appRoleId: GRAPH_ROLE_IDS['Application.Read.All'],
      });
    }
    const app = { appId: created.appId, objectId: created.id };
    const store = new CertificateStore(join(dir.path, name));
    const first = store.create({ commonName: name });
    const { keyId } = await admin.addCertificate(app.objectId, readFileSync(first.cerPath), name);
    store.setKeyId(first.generation!, keyId);
    return { app, store, first, keyId, config: configFor(store.directory, app) };
  }

  /** SHA-1 thumbprints of the certificates registered on the application. */
  async function registered(objectId: string): Promise<string[]> {
    const app = await admin.getApplication(objectId, { select: ['keyCredentials'] });
    return app.keyCredentials.map((k) => String(k.customKeyIdentifier)).sort();
  }

  function tokenClient(credential: PartnerCredential, clientId = partner.appId, scope = SCOPE) {
    const network = new HttpsNetworkClient({ ca: caPem });
    closers.push(() => network.close());
    return new CertificateTokenClient({
      entraInstance: emulator.url,
      tenantId: emulator.tenantId,
      clientId,
      scope,
      credential,
      networkClient: network,
    });
  }

  const keyIdOf = (result: RotationResult) => (result.status === 'rotated' ? result.keyId : undefined);

  it('rotates under continuous calls: no failed call; the old certificate stops working, the new one works', async () => {
    const store = new CertificateStore(join(dir.path, 'partner'));
    const first = store.create({ commonName: 'rotating-partner' });
    const uploaded = await admin.addCertificate(partner.objectId, readFileSync(first.cerPath), 'first');
    const config = configFor(store.directory, partner);

    // The running worker: a token cache whose fetcher uses whichever client is active.
    let active = tokenClient(first);
    const cache = new TokenCache({
      fetcher: (ctx) => active.fetchToken({ scope: ctx.key.scope, skipCache: true }),
    });
    closers.push(() => cache.close());
    const key = { authority: active.authority, clientId: partner.appId, scope: SCOPE };
    let calls = 0;
    const failures: unknown[] = [];
    let running = true;
    const load = (async () => {
      while (running) {
        try {
          await cache.getToken(key);
          calls++;
        } catch (err) {
          failures.push(err);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();

    const result = await rotateWithGraph(config, store, first, {
      oldKeyId: uploaded.keyId,
      graceMs: 200,
      onSwitch: (next) => {
        active = tokenClient(next);
      },
      log: () => {},
    });
    await cache.getToken(key, { forceRefresh: true });
    running = false;
    await load;

    expect(result).toMatchObject({ status: 'rotated', removedKeyId: uploaded.keyId });
    expect(result).not.toHaveProperty('recovered');
    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(0);
    const stored = store.load();
    expect(stored.generation).not.toBe(first.generation);
    expect(readFileSync(store.keyIdPath, 'utf8').trim()).toBe(keyIdOf(result));
    // The old generation is gone, and so is the journal.
    expect(store.generations()).toEqual([stored.generation]);
    expect(existsSync(journalPath(store.directory))).toBe(false);
    expect(await registered(partner.objectId)).toEqual([stored.certificate.thumbprints.sha1Hex]);

    const old = await rejectionOf<TokenAcquisitionError>(tokenClient(first).fetchToken({ skipCache: true }));
    expect(old.aadsts).toBe('700027');
    expect((await tokenClient(stored).fetchToken({ skipCache: true })).accessToken).toBeTruthy();

    // The second rotation knows the keyId to remove from partner.key-id.
    const second = await rotateWithGraph(config, store, undefined, { log: () => {} });
    expect(second).toMatchObject({ status: 'rotated', removedKeyId: keyIdOf(result) });
  }, 60_000);

  for (const readsOwnApplication of [true, false]) {
    it(`addKey stored but its answer lost: the rerun probes with the new certificate, ${readsOwnApplication ? 'reads its keyId from keyCredentials (Application.Read.All)' : 'and, not allowed to read keyCredentials, finishes with the keyId reported unknown'}`, async () => {
      const p = await newPartner(`lost-add-${readsOwnApplication}`, { readsOwnApplication });
      const logs: string[] = [];
      const losing = new AnswersLost(p.config, () => {});
      closers.push(() => losing.close());
      const interrupted = await rejectionOf(
        rotateCertificate({ store: p.store, config: p.config, graph: losing, log: (m) => logs.push(m) }),
      );
      expect(interrupted.message).toMatch(/answer to addKey was lost/);
      const journal = readJournal(p.store.directory)!;
      expect(journal).toMatchObject({ state: 'written', old: { keyId: p.keyId } });
      // The new certificate is registered; the partner still uses the old one.
      expect(await registered(p.app.objectId)).toHaveLength(2);
      expect(p.store.currentGeneration()).toBe(p.first.generation);

      const result = await rotateWithGraph(p.config, p.store, undefined, { log: (m) => logs.push(m) });
      expect(result).toMatchObject({ status: 'rotated', recovered: 'written', removedKeyId: p.keyId });
      expect(logs.join('\n')).toMatch(/interrupted at step "written"/);
      const current = p.store.read();
      expect(current.generation).toBe(journal.next!.generation);
      expect(await registered(p.app.objectId)).toEqual([current.certificate.thumbprints.sha1Hex]);
      expect(existsSync(journalPath(p.store.directory))).toBe(false);
      if (readsOwnApplication) {
        const app = await admin.getApplication(p.app.objectId, { select: ['keyCredentials'] });
        expect(keyIdOf(result)).toBe(app.keyCredentials[0]!.keyId);
        expect(readFileSync(p.store.keyIdPath, 'utf8').trim()).toBe(keyIdOf(result));
      } else {
        expect(keyIdOf(result)).toBeUndefined();
        expect(result.message).toMatch(/keyId unknown/);
        expect(result.message).toMatch(
          /Application\.Read\.All.*Certificates & secrets \(thumbprint [0-9A-F]{40}\).*--old-key-id/,
        );
        expect(existsSync(p.store.keyIdPath)).toBe(false); // partner.key-id is never wrong
      }
    }, 60_000);
  }

  it('removeKey done but its answer lost: the rerun finds it gone, confirms the old certificate no longer authenticates, and finishes', async () => {
    const p = await newPartner('lost-remove');
    const losing = new AnswersLost(p.config, () => {});
    losing.lose = 'removeKey';
    closers.push(() => losing.close());
    await rejectionOf(rotateCertificate({ store: p.store, config: p.config, graph: losing }));
    expect(readJournal(p.store.directory)?.state).toBe('switched');
    expect(await registered(p.app.objectId)).toHaveLength(1);
    const logs: string[] = [];
    const result = await rotateWithGraph(p.config, p.store, undefined, { log: (m) => logs.push(m) });
    expect(result).toMatchObject({ status: 'rotated', recovered: 'switched', removedKeyId: p.keyId });
    expect(logs.join('\n')).toMatch(/keyId .* was removed already/);
    expect(p.store.generations()).toEqual([p.store.currentGeneration()]);
  }, 60_000);

  it('where addKey is refused, the new generation waits (not current) and its .cer is named; once the API owner uploads it, a rerun switches to it', async () => {
    const p = await newPartner('refused');
    class Refusing extends PartnerGraph {
      // A tenant that does not let applications roll their own keys answers addKey 403.
      override async addKey() {
        return {
          kind: 'refused' as const,
          status: 403,
          reason: 'Insufficient privileges to complete the operation.',
        };
      }
    }
    const refusing = new Refusing(p.config, () => {});
    closers.push(() => refusing.close());
    const result = await rotateCertificate({ store: p.store, config: p.config, graph: refusing });
    expect(result.status).toBe('refused');
    if (result.status !== 'refused') return;
    const journal = readJournal(p.store.directory)!;
    expect(journal).toMatchObject({ state: 'refused', refused: { status: 403 } });
    expect(result.nextCerPath).toBe(
      join(p.store.directory, 'generations', journal.next!.generation!, 'partner.cer'),
    );
    expect(result.message).toMatch(/send .*partner\.cer to the API owner/);
    expect(p.store.currentGeneration()).toBe(p.first.generation);

    await admin.addCertificate(p.app.objectId, readFileSync(result.nextCerPath), 'uploaded by the API owner');
    const rerun = await rotateWithGraph(p.config, p.store, undefined, { log: () => {} });
    expect(rerun).toMatchObject({ status: 'rotated', recovered: 'refused', removedKeyId: p.keyId });
    expect(p.store.currentGeneration()).toBe(journal.next!.generation);
  }, 60_000);

  it('a damaged journal stops the rotation, naming how to recover, and changes nothing', async () => {
    const p = await newPartner('damaged');
    writeFileSync(journalPath(p.store.directory), '{"version":1,"state":');
    const err = await rejectionOf(rotateWithGraph(p.config, p.store, undefined, { log: () => {} }));
    expect(err).toBeInstanceOf(RotationJournalError);
    expect(err.message).toMatch(/is damaged.*nothing was changed\. To recover/);
    expect(p.store.generations()).toEqual([p.first.generation]);
    expect(await registered(p.app.objectId)).toHaveLength(1);
    expect(existsSync(join(p.store.directory, 'rotation.lock'))).toBe(false);
  }, 60_000);

  it('refuses a weaker key before anything is written', async () => {
    const p = await newPartner('stronger');
    p.store.create({ commonName: 'stronger', keySize: 3072, force: true });
    const refused = await rejectionOf(
      rotateWithGraph(p.config, p.store, undefined, { keySize: 2048, log: () => {} }),
    );
    expect(refused).toBeInstanceOf(RotationError);
    expect(refused.message).toMatch(/--key-size 2048 is smaller than the current key \(3072 bits\)/);
    expect(existsSync(journalPath(p.store.directory))).toBe(false);
  }, 60_000);

  it('rotates a key in a SoftHSM2 token: the next key is made in the same token (label derived from the current one, a new id), sensitive and not extractable, and the old key pair is deleted after removeKey', async () => {
    let hsm: SoftHsmToken | undefined;
    try {
      hsm = createSoftHsmToken({ label: 'rotation' });
      // SoftHSM2 reads its configuration from the process environment when the module starts.
      process.env['SOFTHSM2_CONF'] = hsm.conf;
      const env = { PARTNER_PKCS11_MODULE: hsm.modulePath, PARTNER_PKCS11_PIN: hsm.pin };
      const created = await admin.createApplication({ displayName: 'token-partner' });
      await admin.createServicePrincipal(created.appId);
      const app = { appId: created.appId, objectId: created.id };
      const store = new CertificateStore(join(dir.path, 'token-partner'));
      const first = await store.createInToken({
        keyStore: 'pkcs11:token=rotation;object=partner-2026',
        commonName: 'token-partner',
        env,
      });
      first.close();
      const { keyId } = await admin.addCertificate(app.objectId, readFileSync(first.cerPath), 'token');
      store.setKeyId(first.generation!, keyId);
      const config = configFor(store.directory, app, env);

      const rotated = await rotateWithGraph(config, store, undefined, { log: () => {} });
      expect(rotated).toMatchObject({ status: 'rotated', removedKeyId: keyId });
      const next = store.read({ env });
      const nextUri = parsePkcs11Uri(next.keyUri!);
      const oldUri = parsePkcs11Uri(first.keyUri!);
      expect(nextUri.token).toBe('rotation');
      expect(nextUri.object).toMatch(/^partner-2026-r\d{8}T\d{6}Z$/);
      expect(nextUri.id!.equals(oldUri.id!)).toBe(false);
      const token = Pkcs11Token.open(nextUri, { modulePath: hsm.modulePath, pin: hsm.pin });
      try {
        expect(token.keyAttributes(nextUri)).toMatchObject({
          sensitive: true,
          extractable: false,
          canSign: true,
        });
        expect(token.hasKey(oldUri)).toBe(false);
      } finally {
        token.close();
      }
      expect(await registered(app.objectId)).toEqual([next.certificate.thumbprints.sha1Hex]);
      next.close();

      // The next rotation replaces the suffix rather than adding another.
      await new Promise((r) => setTimeout(r, 1_000));
      await rotateWithGraph(config, store, undefined, { log: () => {} });
      const third = store.read({ env });
      expect(parsePkcs11Uri(third.keyUri!).object).toMatch(/^partner-2026-r\d{8}T\d{6}Z$/);
      third.close();
    } finally {
      hsm?.remove();
    }
  }, 60_000);

  it('rotates a directory of the first layout (flat files, partner.key-id a file): adopted as a generation, then removed with the old certificate', async () => {
    const created = await admin.createApplication({ displayName: 'flat-partner' });
    await admin.createServicePrincipal(created.appId);
    const app = { appId: created.appId, objectId: created.id };
    const directory = join(dir.path, 'flat-partner');
    mkdirSync(directory, { mode: 0o700 });
    const pair = createSelfSignedCertificate({ commonName: 'flat-partner', days: 30 });
    const certificate = parseCertificate(pair.certificatePem);
    writeFileSync(join(directory, 'partner.key.pem'), pair.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(directory, 'partner.crt.pem'), pair.certificatePem);
    writeFileSync(join(directory, 'partner.cer'), certificate.der);
    const { keyId } = await admin.addCertificate(app.objectId, certificate.der, 'flat');
    writeFileSync(join(directory, 'partner.key-id'), `${keyId}\n`);
    const store = new CertificateStore(directory);
    expect(store.currentGeneration()).toBeUndefined();

    const result = await rotateWithGraph(configFor(directory, app), store, undefined, { log: () => {} });
    expect(result).toMatchObject({ status: 'rotated', removedKeyId: keyId });
    const current = store.read();
    expect(store.generations()).toEqual([current.generation]);
    expect(await registered(app.objectId)).toEqual([current.certificate.thumbprints.sha1Hex]);
    expect(readFileSync(store.keyIdPath, 'utf8').trim()).toBe(keyIdOf(result));
  }, 60_000);

  it('matches a registered certificate by its key, or by customKeyIdentifier as hex, base64 of the digest, or base64 of the hex', () => {
    const { certificate } = new CertificateStore(join(dir.path, 'match')).create();
    const sha1 = Buffer.from(certificate.thumbprints.sha1Hex, 'hex');
    expect(isKeyCredentialOf({ key: certificate.der.toString('base64') }, certificate)).toBe(true);
    expect(isKeyCredentialOf({ customKeyIdentifier: certificate.thumbprints.sha1Hex }, certificate)).toBe(
      true,
    );
    expect(isKeyCredentialOf({ customKeyIdentifier: sha1.toString('base64') }, certificate)).toBe(true);
    expect(
      isKeyCredentialOf(
        { customKeyIdentifier: Buffer.from(certificate.thumbprints.sha1Hex).toString('base64') },
        certificate,
      ),
    ).toBe(true);
    expect(isKeyCredentialOf({ customKeyIdentifier: 'AAAA', key: null }, certificate)).toBe(false);
  });

  it('builds the proof Graph expects, signed through the credential signer (RS256)', async () => {
    const cred = new CertificateStore(join(dir.path, 'proof')).create();
    const proof = await createProofOfPossession(
      '11111111-1111-1111-1111-111111111111',
      cred,
      new Date(1_800_000_000_000),
    );
    const [h, p, s] = proof.split('.');
    expect(JSON.parse(Buffer.from(h!, 'base64url').toString())).toEqual({
      alg: 'RS256',
      typ: 'JWT',
      x5t: cred.certificate.thumbprints.sha1Base64Url,
    });
    expect(JSON.parse(Buffer.from(p!, 'base64url').toString())).toMatchObject({
      aud: '00000002-0000-0000-c000-000000000000',
      iss: '11111111-1111-1111-1111-111111111111',
      nbf: 1_800_000_000,
      exp: 1_800_000_600,
    });
    expect(
      verifySignature(
        cred.certificate.publicKey,
        'RS256',
        Buffer.from(`${h}.${p}`),
        Buffer.from(s!, 'base64url'),
      ),
    ).toBe(true);
  });
});
