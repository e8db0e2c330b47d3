/**
 * What a rotation deletes from a SoftHSM2 token, against the real emulator: a rotation.json
 * that names the key in use (as the "old" key, as the planned next key, or in a token reached
 * through another module) is refused and changes nothing; and when the old certificate's keyId
 * cannot be learned, the old generation and key pair are deleted all the same and the result
 * names the certificate left registered.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePkcs11Uri } from '@certflow/pkcs11';
import { rejectionOf } from '@certflow/testing';
import { CertificateStore } from './certificate-store';
import { readRotationConfig, type RotationConfig } from './config';
import { PartnerGraph, rotateWithGraph } from './graph-rotation';
import { rotateCertificate, RotationError } from './rotation';
import { useTokenAndEmulator } from './rotation.test-helpers';
import { journalPath, readJournal, type RotationJournal } from './rotation-journal';

const API_URI = 'api://certflow-rotation-cleanup-test';

describe('what a rotation deletes from the token', () => {
  const fx = useTokenAndEmulator('cleanup', {
    name: 'rotation cleanup test',
    apiIdentifierUri: API_URI,
  });
  const { dir, inToken } = fx;

  /** A partner whose key is in the token, its certificate registered (keyId in partner.key-id unless `unknownKeyId`). */
  async function tokenPartner(name: string, opts: { unknownKeyId?: boolean; label?: string } = {}) {
    const created = await fx.admin.createApplication({ displayName: name });
    await fx.admin.createServicePrincipal(created.appId);
    const store = new CertificateStore(join(dir.path, name));
    const first = await store.createInToken({
      keyStore: `pkcs11:token=cleanup;object=${opts.label ?? name}`,
      commonName: name,
      env: fx.env,
    });
    first.close();
    const { keyId } = await fx.admin.addCertificate(created.id, readFileSync(first.cerPath), name);
    if (!opts.unknownKeyId) store.setKeyId(first.generation!, keyId);
    const config: RotationConfig = readRotationConfig(
      {
        ENTRA_INSTANCE: fx.emulator.url,
        PARTNER_TENANT_ID: fx.emulator.tenantId,
        PARTNER_CLIENT_ID: created.appId,
        PARTNER_SCOPE: `${API_URI}/.default`,
        PARTNER_CERT_DIR: store.directory,
        PARTNER_CA_FILE: join(dir.path, 'ca.pem'),
        PARTNER_APP_OBJECT_ID: created.id,
        PARTNER_GRAPH_URL: fx.emulator.graphUrl,
        ...fx.env,
      },
      dir.path,
    );
    return { store, first, keyId, config, objectId: created.id };
  }

  /** Writes `journal` as rotation.json; runs `cert rotate`; expects a refusal that changed nothing. */
  async function expectRefused(p: Awaited<ReturnType<typeof tokenPartner>>, journal: RotationJournal) {
    const text = `${JSON.stringify(journal, null, 2)}\n`;
    writeFileSync(journalPath(p.store.directory), text, { mode: 0o600 });
    const keyUri = parsePkcs11Uri(p.first.keyUri!);
    const err = await rejectionOf(rotateWithGraph(p.config, p.store, undefined, { log: () => {} }));
    expect(err).toBeInstanceOf(RotationError);
    expect(inToken((t) => t.hasKey(keyUri))).toBe(true);
    expect(readFileSync(journalPath(p.store.directory), 'utf8')).toBe(text);
    expect(p.store.generations()).toEqual([p.first.generation]);
    const current = p.store.load(new Date(), { env: fx.env });
    current.close();
    return err.message;
  }

  function journalOf(
    p: Awaited<ReturnType<typeof tokenPartner>>,
  ): Pick<RotationJournal, 'version' | 'startedAt' | 'old'> {
    const { sha256Hex: sha256, sha1Hex: sha1 } = p.first.certificate.thumbprints;
    return {
      version: 1,
      startedAt: new Date().toISOString(),
      old: { sha256, sha1, generation: p.first.generation!, keyId: p.keyId },
    };
  }

  /** A journal of `p` at "key-planned" whose planned key is the one `uri` names in this token. */
  function planning(
    p: Awaited<ReturnType<typeof tokenPartner>>,
    uri: ReturnType<typeof parsePkcs11Uri>,
  ): RotationJournal {
    return {
      ...journalOf(p),
      state: 'key-planned',
      next: {
        tokenKey: { tokenUri: 'pkcs11:token=cleanup', label: uri.object!, id: uri.id!.toString('hex') },
      },
    };
  }

  it('route A: a journal at "removed" naming the generation and key in use as the old ones is refused; the key stays', async () => {
    const p = await tokenPartner('route-a');
    const base = journalOf(p);
    const message = await expectRefused(p, {
      ...base,
      state: 'removed',
      old: { ...base.old, keyUri: p.first.keyUri! } as RotationJournal['old'],
      next: { ...base.old, keyId: p.keyId },
      switchedAt: new Date().toISOString(),
    });
    expect(message).toMatch(/names \S+ as the old generation, but it is the one in use; nothing was deleted/);
  }, 60_000);

  it("route A: an old generation whose partner.key.p11 names a key that is not its certificate's (another partner's in the same token) is refused; that key stays", async () => {
    const victim = await tokenPartner('victim');
    const p = await tokenPartner('route-a-other');
    const rotated = await rotateWithGraph(p.config, p.store, undefined, { log: () => {} });
    if (rotated.status !== 'rotated') throw new Error(rotated.message);
    const next = rotated.credential;
    // The old generation back, its key reference naming the victim's key.
    const oldDir = join(p.store.directory, 'generations', p.first.generation!);
    mkdirSync(oldDir, { mode: 0o700 });
    writeFileSync(join(oldDir, 'partner.crt.pem'), p.first.certificate.pem);
    writeFileSync(join(oldDir, 'partner.cer'), p.first.certificate.der);
    writeFileSync(join(oldDir, 'partner.key.p11'), `${victim.first.keyUri}\n`, { mode: 0o600 });
    const base = journalOf(p);
    writeFileSync(
      journalPath(p.store.directory),
      JSON.stringify({
        ...base,
        state: 'removed',
        old: { ...base.old, keyUri: victim.first.keyUri },
        next: {
          sha256: next.certificate.thumbprints.sha256Hex,
          sha1: next.certificate.thumbprints.sha1Hex,
          generation: next.generation,
          keyId: rotated.keyId,
        },
        switchedAt: new Date().toISOString(),
      }),
    );
    const err = await rejectionOf(rotateWithGraph(p.config, p.store, undefined, { log: () => {} }));
    expect(err.message).toMatch(
      new RegExp(
        `refusing to delete the old key \\(generation ${p.first.generation}\\) from the token: it belongs to another certificate directory`,
      ),
    );
    expect(inToken((t) => t.hasKey(parsePkcs11Uri(victim.first.keyUri!)))).toBe(true);
    expect(existsSync(oldDir)).toBe(true);
  }, 60_000);

  it('route B: a journal at "key-planned" whose planned key is the key in use (its label and CKA_ID) is refused; the key stays', async () => {
    // A key made by an earlier rotation: its label is one a rotation of it could make again.
    const p = await tokenPartner('route-b', { label: 'route-b-r20260101T000000Z' });
    const uri = parsePkcs11Uri(p.first.keyUri!);
    const message = await expectRefused(p, planning(p, uri));
    expect(message).toMatch(
      new RegExp(
        `refusing to delete the unfinished key route-b-r\\S+ .*generation ${p.first.generation} uses the key`,
      ),
    );
  }, 60_000);

  it("route B: a planned key that is not named as a rotation of the current key names its next one (another partner's key in a shared token) is refused; that key stays", async () => {
    const victim = await tokenPartner('victim-b');
    const p = await tokenPartner('route-b-shared');
    const uri = parsePkcs11Uri(victim.first.keyUri!);
    const message = await expectRefused(p, planning(p, uri));
    expect(message).toMatch(
      /refusing to delete the unfinished key victim-b .*labels its next key route-b-shared-r<time>/,
    );
    expect(inToken((t) => t.hasKey(uri))).toBe(true);
  }, 60_000);

  it('route B: a planned key in a token reached through another module is refused before that module is loaded', async () => {
    const p = await tokenPartner('route-b-module');
    const message = await expectRefused(p, {
      ...journalOf(p),
      state: 'key-planned',
      next: {
        tokenKey: {
          tokenUri: 'pkcs11:token=cleanup?module-path=/srv/partner/lib/other-pkcs11.so',
          label: 'route-b-module-r20260101T000000Z',
          id: '00112233445566778899aabbccddeeff',
        },
      },
    });
    expect(message).toMatch(
      /not in the current key's token \(it names the module \/srv\/partner\/lib\/other-pkcs11\.so/,
    );
  }, 60_000);

  it("the old certificate's keyId unknown (partner.key-id absent, keyCredentials not readable): the old generation and key pair go all the same, and the result names the certificate still registered", async () => {
    const p = await tokenPartner('unknown-old', { unknownKeyId: true });
    const oldUri = parsePkcs11Uri(p.first.keyUri!);
    const result = await rotateWithGraph(p.config, p.store, undefined, { log: () => {} });
    const sha1 = p.first.certificate.thumbprints.sha1Hex;
    expect(result).toMatchObject({ status: 'rotated', oldStillRegistered: sha1 });
    expect(result).not.toHaveProperty('removedKeyId');
    expect(result.message).toMatch(
      new RegExp(
        `the old certificate ${sha1} is still registered: its keyId is not known here.*thumbprint ${sha1}`,
      ),
    );
    const current = p.store.read({ env: fx.env });
    current.close();
    expect(p.store.generations()).toEqual([current.generation]);
    expect(inToken((t) => [t.hasKey(oldUri), t.hasKey(parsePkcs11Uri(current.keyUri!))])).toEqual([
      false,
      true,
    ]);
    const app = await fx.admin.getApplication(p.objectId, { select: ['keyCredentials'] });
    expect(app.keyCredentials.map((k) => String(k.customKeyIdentifier)).sort()).toEqual(
      [sha1, current.certificate.thumbprints.sha1Hex].sort(),
    );
  }, 60_000);

  it('a journal at "switched" whose old keyId is the new certificate\'s is refused: removeKey is not sent', async () => {
    const p = await tokenPartner('switched-own-keyid');
    class Stopping extends PartnerGraph {
      override async removeKey(): Promise<'removed'> {
        throw new Error('killed before removeKey');
      }
    }
    const stopping = new Stopping(p.config, () => {});
    await rejectionOf(rotateCertificate({ store: p.store, config: p.config, graph: stopping }));
    stopping.close();
    const journal = readJournal(p.store.directory)!;
    expect(journal.state).toBe('switched');
    writeFileSync(
      journalPath(p.store.directory),
      JSON.stringify({ ...journal, old: { ...journal.old, keyId: journal.next!.keyId } }),
    );
    const err = await rejectionOf(rotateWithGraph(p.config, p.store, undefined, { log: () => {} }));
    expect(err.message).toMatch(/the keyId to remove, \S+, is the new certificate's; nothing was removed/);
    const app = await fx.admin.getApplication(p.objectId, { select: ['keyCredentials'] });
    expect(app.keyCredentials.map((k) => k.keyId).sort()).toEqual([p.keyId, journal.next!.keyId].sort());
  }, 60_000);

  it('killed right after recording that removeKey cannot be sent: the rerun deletes the old key pair and generation and still names the certificate left registered', async () => {
    const p = await tokenPartner('unknown-old-rerun', { unknownKeyId: true });
    const oldUri = parsePkcs11Uri(p.first.keyUri!);
    const stop = (m: string) => {
      // The journal says "removed" by now: stopping here is a crash before the deletions.
      if (/it stays registered/.test(m)) throw new Error('killed');
    };
    await rejectionOf(rotateWithGraph(p.config, p.store, undefined, { log: stop }));
    expect(inToken((t) => t.hasKey(oldUri))).toBe(true);
    expect(p.store.generations()).toHaveLength(2);
    const result = await rotateWithGraph(p.config, p.store, undefined, { log: () => {} });
    const sha1 = p.first.certificate.thumbprints.sha1Hex;
    expect(result).toMatchObject({ status: 'rotated', recovered: 'removed', oldStillRegistered: sha1 });
    expect(p.store.generations()).toEqual([p.store.currentGeneration()]);
    expect(inToken((t) => t.hasKey(oldUri))).toBe(false);
    expect(existsSync(journalPath(p.store.directory))).toBe(false);
  }, 60_000);
});
