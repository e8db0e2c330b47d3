/**
 * Two partners keep their keys in one SoftHSM2 token, with the same label base (the default
 * `certflow-partner-r<time>`). Whoever can write partner A's certificate directory can forge
 * everything in it, rotation.json included; what they cannot change is the binding partner B's
 * key got when certflow made it (CKA_SUBJECT, not modifiable). Against the real emulator: both
 * ways of making A's `cert rotate` delete B's key are refused, and B's key still signs; a key
 * without a binding is left; a moved directory keeps working but its old key is not deleted; a
 * current certificate that is not registered stops the rotation before anything is written.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { verifySignature } from '@certflow/certs';
import { parsePkcs11Uri } from '@certflow/pkcs11';
import { rejectionOf } from '@certflow/testing';
import { CertificateStore } from './certificate-store';
import { readRotationConfig } from './config';
import { rotateWithGraph } from './graph-rotation';
import { directoryBinding } from './key-in-token';
import { RotationError } from './rotation';
import { useTokenAndEmulator } from './rotation.test-helpers';
import { journalPath, type RotationJournal } from './rotation-journal';

const API_URI = 'api://certflow-rotation-binding-test';

describe('a key in a shared token is deleted only by the directory it was made for', () => {
  const fx = useTokenAndEmulator('shared', {
    name: 'rotation binding test',
    apiIdentifierUri: API_URI,
  });
  const { dir, inToken } = fx;

  /** A partner whose key (labelled `label`) is in the shared token, its certificate registered unless told. */
  async function partner(name: string, label: string, opts: { registered?: boolean } = {}) {
    const created = await fx.admin.createApplication({ displayName: name });
    await fx.admin.createServicePrincipal(created.appId);
    const store = new CertificateStore(join(dir.path, name));
    const first = await store.createInToken({
      keyStore: `pkcs11:token=shared;object=${label}`,
      commonName: name,
      env: fx.env,
    });
    first.close();
    if (opts.registered !== false) {
      const { keyId } = await fx.admin.addCertificate(created.id, readFileSync(first.cerPath), name);
      store.setKeyId(first.generation!, keyId);
    }
    const config = (directory: string) =>
      readRotationConfig(
        {
          ENTRA_INSTANCE: fx.emulator.url,
          PARTNER_TENANT_ID: fx.emulator.tenantId,
          PARTNER_CLIENT_ID: created.appId,
          PARTNER_SCOPE: `${API_URI}/.default`,
          PARTNER_CERT_DIR: directory,
          PARTNER_CA_FILE: join(dir.path, 'ca.pem'),
          PARTNER_APP_OBJECT_ID: created.id,
          PARTNER_GRAPH_URL: fx.emulator.graphUrl,
          ...fx.env,
        },
        dir.path,
      );
    return { store, first, config: config(store.directory), configAt: config };
  }

  /** B's key is still in the token and still signs what B's certificate verifies. */
  async function expectStillSigns(b: Awaited<ReturnType<typeof partner>>) {
    const credential = b.store.load(new Date(), { env: fx.env });
    try {
      const data = Buffer.from('still mine');
      const signature = await credential.signer.sign('RS256', data);
      expect(verifySignature(credential.certificate.publicKey, 'RS256', data, signature)).toBe(true);
    } finally {
      credential.close();
    }
  }

  it('cert create binds the key to its directory: CKA_SUBJECT is "certflow:" + SHA-256 of the real path, not modifiable', async () => {
    const a = await partner('bound', 'certflow-partner-r20260101T000000Z');
    const attributes = inToken((t) => t.keyAttributes(parsePkcs11Uri(a.first.keyUri!)));
    expect(attributes).toMatchObject({ binding: directoryBinding(a.store.directory), modifiable: false });
    expect(attributes.binding).toMatch(/^certflow:[0-9a-f]{64}$/);
  }, 60_000);

  /** The start of a journal whose old generation is `p`'s first one (the fields every state has). */
  function journalStart(
    p: Awaited<ReturnType<typeof partner>>,
  ): Pick<RotationJournal, 'version' | 'startedAt' | 'old'> {
    const { sha256Hex: sha256, sha1Hex: sha1 } = p.first.certificate.thumbprints;
    return {
      version: 1,
      startedAt: new Date().toISOString(),
      old: { sha256, sha1, generation: p.first.generation! },
    };
  }

  it('re-attack (a): a journal at "key-planned" naming B\'s label and CKA_ID (same label base) is refused; B\'s key still signs', async () => {
    const b = await partner('victim-a', 'certflow-partner-r20260101T000001Z');
    const a = await partner('attacker-a', 'certflow-partner-r20260101T000002Z');
    const bUri = parsePkcs11Uri(b.first.keyUri!);
    const journal: RotationJournal = {
      ...journalStart(a),
      state: 'key-planned',
      next: {
        tokenKey: { tokenUri: 'pkcs11:token=shared', label: bUri.object!, id: bUri.id!.toString('hex') },
      },
    };
    const text = `${JSON.stringify(journal)}\n`;
    writeFileSync(journalPath(a.store.directory), text, { mode: 0o600 });
    const err = await rejectionOf(rotateWithGraph(a.config, a.store, undefined, { log: () => {} }));
    expect(err).toBeInstanceOf(RotationError);
    expect(err.message).toMatch(
      /refusing to delete the unfinished key certflow-partner-r20260101T000001Z .*it belongs to another certificate directory .*nothing was deleted/,
    );
    expect(readFileSync(journalPath(a.store.directory), 'utf8')).toBe(text);
    expect(inToken((t) => t.hasKey(bUri))).toBe(true);
    await expectStillSigns(b);
  }, 60_000);

  it('re-attack (b): a journal at "removed" whose old generation is a planted copy of B\'s is refused; B\'s key still signs', async () => {
    const b = await partner('victim-b', 'certflow-partner-r20260101T000003Z');
    // (another label base: two rotations in one second in one token would want the same label)
    const a = await partner('attacker-b', 'attacker-b-r20260101T000004Z');
    const rotated = await rotateWithGraph(a.config, a.store, undefined, { log: () => {} });
    if (rotated.status !== 'rotated') throw new Error(rotated.message);
    // B's generation, copied as it is (public certificate and key reference) into A's directory.
    const planted = join(a.store.directory, 'generations', b.first.generation!);
    mkdirSync(planted, { mode: 0o700 });
    writeFileSync(join(planted, 'partner.crt.pem'), b.first.certificate.pem);
    writeFileSync(join(planted, 'partner.cer'), b.first.certificate.der);
    writeFileSync(join(planted, 'partner.key.p11'), `${b.first.keyUri}\n`, { mode: 0o600 });
    const next = rotated.credential.certificate.thumbprints;
    writeFileSync(
      journalPath(a.store.directory),
      JSON.stringify({
        ...journalStart(b),
        state: 'removed',
        next: {
          sha256: next.sha256Hex,
          sha1: next.sha1Hex,
          generation: rotated.credential.generation,
          keyId: rotated.keyId,
        },
        switchedAt: new Date().toISOString(),
      }),
    );
    const err = await rejectionOf(rotateWithGraph(a.config, a.store, undefined, { log: () => {} }));
    expect(err.message).toMatch(
      new RegExp(
        `refusing to delete the old key \\(generation ${b.first.generation}\\) from the token: it belongs to another certificate directory \\(its binding is ${directoryBinding(b.store.directory)}, this directory's ${directoryBinding(a.store.directory)}`,
      ),
    );
    expect(existsSync(planted)).toBe(true);
    expect(inToken((t) => t.hasKey(parsePkcs11Uri(b.first.keyUri!)))).toBe(true);
    await expectStillSigns(b);
  }, 60_000);

  it('a planned key without a binding (not made by certflow) is left in the token, the log says so, and the rotation goes on', async () => {
    const a = await partner('unbound', 'unbound-r20260101T000005Z');
    const orphan = { label: 'unbound-r20260101T000006Z', id: Buffer.alloc(16, 7) };
    inToken((t) => t.generateRsaKeyPair({ ...orphan, bits: 2048 }));
    writeFileSync(
      journalPath(a.store.directory),
      JSON.stringify({
        ...journalStart(a),
        state: 'key-planned',
        next: {
          tokenKey: { tokenUri: 'pkcs11:token=shared', label: orphan.label, id: orphan.id.toString('hex') },
        },
      }),
    );
    const logs: string[] = [];
    const result = await rotateWithGraph(a.config, a.store, undefined, { log: (m) => logs.push(m) });
    expect(result).toMatchObject({ status: 'rotated', recovered: 'key-planned' });
    expect(logs.join('\n')).toMatch(
      /left the unfinished key unbound-r20260101T000006Z .* in the token: it carries no certflow binding/,
    );
    expect(inToken((t) => t.hasKey({ id: orphan.id }))).toBe(true);
  }, 60_000);

  it('a moved directory still works, and its rotation refuses to delete the old key, naming the recorded and the current binding', async () => {
    const a = await partner('before-move', 'before-move-r20260101T000007Z');
    const moved = join(dir.path, 'after-move');
    renameSync(a.store.directory, moved);
    const store = new CertificateStore(moved);
    const err = await rejectionOf(rotateWithGraph(a.configAt(moved), store, undefined, { log: () => {} }));
    expect(err.message).toMatch(
      new RegExp(
        `refusing to delete the old key .*its binding is ${directoryBinding(join(dir.path, 'before-move'))}, this directory's ${directoryBinding(moved)}.*moved or renamed`,
      ),
    );
    expect(inToken((t) => t.hasKey(parsePkcs11Uri(a.first.keyUri!)))).toBe(true);
    const current = store.load(new Date(), { env: fx.env });
    current.close();
    expect(current.generation).not.toBe(a.first.generation); // switched: the new key is in use
    expect(inToken((t) => t.keyAttributes(parsePkcs11Uri(current.keyUri!)).binding)).toBe(
      directoryBinding(moved),
    );
    // The old key deleted by hand: the rerun finishes.
    expect(inToken((t) => t.deleteKeyPair(parsePkcs11Uri(a.first.keyUri!)))).toBe(true);
    const finished = await rotateWithGraph(a.configAt(moved), store, undefined, { log: () => {} });
    expect(finished).toMatchObject({ status: 'rotated', recovered: 'removed' });
    expect(store.generations()).toEqual([current.generation]);
    expect(existsSync(journalPath(moved))).toBe(false);
  }, 60_000);

  it('a current certificate that is not registered stops the rotation before anything is written', async () => {
    const a = await partner('unregistered', 'certflow-partner-r20260101T000008Z', { registered: false });
    const err = await rejectionOf(rotateWithGraph(a.config, a.store, undefined, { log: () => {} }));
    expect(err.message).toMatch(
      new RegExp(
        `the current certificate ${a.first.certificate.thumbprints.sha1Hex} is not registered for the application \\S+ \\(AADSTS700027\\).*nothing was changed`,
      ),
    );
    expect(existsSync(journalPath(a.store.directory))).toBe(false);
    expect(a.store.generations()).toEqual([a.first.generation]);
    expect(inToken((t) => t.hasKey({ object: 'certflow-partner-r20260101T000008Z' }))).toBe(true);
    // cert create is not blocked by a journal left behind
    const again = await a.store.createInToken({
      keyStore: 'pkcs11:token=shared;object=certflow-partner-r20260101T000009Z',
      commonName: 'unregistered',
      env: fx.env,
      force: true,
    });
    again.close();
  }, 60_000);
});
