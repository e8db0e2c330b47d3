/**
 * Certificate rotation by the partner itself, with Microsoft Graph's addKey/removeKey, safe
 * against a crash at any point. One rotation at a time per directory (rotation-lock.ts); each
 * step is recorded in the journal (rotation-journal.ts) before the step it guards:
 *
 * 1. the next key: in memory (file keys), or generated in the same PKCS#11 token as the current
 *    one (label derived from the current label, a fresh random CKA_ID, both journaled first);
 *    its self-signed certificate (signed through the token for a token key);
 * 2. the new generation written complete (store.writeGeneration), not current yet;
 * 3. addKey, its proof signed by the CURRENT certificate's signer; the keyId recorded in the
 *    new generation (partner.key-id, a link into `current`, is therefore always true);
 * 4. the switch: `current` renamed to the new generation, one atomic step that running
 *    workers watch (and `onSwitch` for a worker in this process);
 * 5. after the grace period (counted from the recorded switch), removeKey of the old keyId, its
 *    proof signed by the NEW signer; only then the old generation and, for a token key, the
 *    old key pair are deleted, and the journal.
 *
 * A rerun after a crash finishes or undoes what the journal says was under way (each case is
 * described where it is handled below; how the keyId of a certificate whose addKey answer was
 * lost is learned: PartnerGraph.keyIdOf in graph-rotation.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import type { RsaKeySize } from '@certflow/certs';
import { isGuid } from '@certflow/claims';
import type { CertificateStore, PartnerCredential, StoreReadOptions } from './certificate-store';
import { storeReadOptions, type RotationConfig } from './config';
import type { PartnerGraph } from './graph-rotation';
import { deletePlannedKey, generationWith, removeOldGeneration } from './rotation-cleanup';
import { commonNameOf, makeNextKey, nextKeySize, RotationError } from './rotation-keys';
import { acquireRotationLock } from './rotation-lock';
import {
  readJournal,
  removeJournal,
  writeJournal,
  type RotationJournal,
  type RotationState,
} from './rotation-journal';

export { nextKeyLabel, RotationError } from './rotation-keys';

export interface RotationOptions {
  store: CertificateStore;
  config: RotationConfig;
  graph: PartnerGraph;
  /** The credential in use, when the caller holds it open (a running worker); read from the store otherwise. */
  current?: PartnerCredential | undefined;
  commonName?: string;
  days?: number;
  /** RSA modulus length of the next key; default: the current key's. */
  keySize?: RsaKeySize;
  /** Wait this long between the switch and removing the old certificate (default 0). */
  graceMs?: number;
  /** keyId of the current certificate; default: the one in partner.key-id. */
  oldKeyId?: string;
  /** Called once the new generation is current: switch the running client (it then owns `next`). */
  onSwitch?(next: PartnerCredential): void | Promise<void>;
  log?(message: string): void;
}

interface Outcome {
  /** The journal's step when this run found an interrupted rotation. */
  recovered?: RotationState;
  message: string;
}

export type RotationResult =
  | (Outcome & {
      status: 'rotated';
      /** The new credential (closed, unless onSwitch took it). */
      credential: PartnerCredential;
      /** undefined: addKey's answer was lost and the keyCredentials could not be read (see message). */
      keyId?: string;
      /** keyId of the removed certificate; undefined when it was not removed (see message). */
      removedKeyId?: string;
      /**
       * SHA-1 thumbprint of the old certificate when it is still registered: its keyId was not
       * known, so removeKey could not be sent. Its private key is deleted all the same, so it
       * can sign nothing; the API owner removes it (see message).
       */
      oldStillRegistered?: string;
    })
  | (Outcome & { status: 'refused'; nextCerPath: string });

const DEFAULT_DAYS = 365;

export async function rotateCertificate(opts: RotationOptions): Promise<RotationResult> {
  const log = opts.log ?? (() => {});
  const lock = acquireRotationLock(opts.store.directory, log);
  const rotation = new Rotation(opts, log);
  try {
    return await rotation.run();
  } finally {
    rotation.close();
    lock.release();
  }
}

class Rotation {
  private journal!: RotationJournal;
  private recovered: RotationState | undefined;
  /** A rerun at `written`/`refused`: whether addKey was done is not known, so the probe comes first. */
  private probeFirst = false;
  private readonly readOptions: StoreReadOptions;
  private readonly opened: PartnerCredential[] = [];
  private old: PartnerCredential | undefined;
  private next: PartnerCredential | undefined;
  private handedOver = false;
  private removedKeyId: string | undefined;

  constructor(
    private readonly opts: RotationOptions,
    private readonly log: (message: string) => void,
  ) {
    this.readOptions = storeReadOptions(opts.config);
  }

  private get store(): CertificateStore {
    return this.opts.store;
  }

  private record(state: RotationState, change: Partial<RotationJournal> = {}): void {
    this.journal = { ...this.journal, ...change, state };
    writeJournal(this.store.directory, this.journal);
  }

  async run(): Promise<RotationResult> {
    const interrupted = readJournal(this.store.directory); // damaged: throws, nothing changed
    for (const path of this.store.removeLeftovers())
      this.log(`removed ${path}, left by a process killed half-way`);
    if (interrupted) {
      this.journal = interrupted;
      this.recovered = interrupted.state;
      this.probeFirst = interrupted.state === 'written' || interrupted.state === 'refused';
      this.log(
        `finishing the rotation interrupted at step "${interrupted.state}" (started ${interrupted.startedAt})`,
      );
    } else {
      await this.begin();
    }
    for (;;) {
      const result = await this.step(this.journal.state);
      if (result) return result;
    }
  }

  /** One step from `state`; the result once the rotation is over, or refused. */
  private async step(state: RotationState): Promise<RotationResult | undefined> {
    if (state === 'started') await this.makeNext();
    else if (state === 'key-planned' || state === 'certificate-made') this.undoIncomplete();
    else if (state === 'written' || state === 'refused') return this.register();
    else if (state === 'added') await this.switchToNext();
    else if (state === 'switched') await this.removeOld();
    else return this.finish();
    return undefined;
  }

  /** Checks what can be checked before anything is written (the key size, a Graph token with the current certificate), then journals the start. */
  private async begin(): Promise<void> {
    const current = this.opts.current ?? this.track(this.store.load(new Date(), this.readOptions));
    nextKeySize(current.certificate, this.opts.keySize);
    await this.opts.graph.signIn(current);
    const keyId = this.opts.oldKeyId ?? this.recordedKeyId();
    this.old = current;
    this.journal = {
      version: 1,
      state: 'started',
      startedAt: new Date().toISOString(),
      old: {
        sha256: current.certificate.thumbprints.sha256Hex,
        sha1: current.certificate.thumbprints.sha1Hex,
        ...(current.generation !== undefined ? { generation: current.generation } : {}),
        ...(keyId !== undefined ? { keyId: keyId.toLowerCase() } : {}),
      },
    };
    writeJournal(this.store.directory, this.journal);
  }

  /** partner.key-id of the certificate in use (a link into `current`, or a file of the first layout). */
  private recordedKeyId(): string | undefined {
    if (!existsSync(this.store.keyIdPath)) return undefined;
    const text = readFileSync(this.store.keyIdPath, 'utf8').trim();
    return isGuid(text) ? text : undefined;
  }

  private track(credential: PartnerCredential): PartnerCredential {
    this.opened.push(credential);
    return credential;
  }

  private oldCredential(): PartnerCredential {
    if (this.old) return this.old;
    const { old } = this.journal;
    if (this.opts.current?.certificate.thumbprints.sha256Hex === old.sha256)
      return (this.old = this.opts.current);
    const gen = old.generation ?? generationWith(this.store.directory, old.sha256);
    const credential = this.track(
      gen !== undefined
        ? this.store.readGeneration(gen, this.readOptions)
        : this.store.read(this.readOptions),
    );
    if (credential.certificate.thumbprints.sha256Hex !== old.sha256)
      throw new RotationError(
        `the rotation journal names the old certificate ${old.sha256}, but ${gen ?? this.store.directory} holds ${credential.certificate.thumbprints.sha256Hex}: the directory changed during the rotation; see "cert show"`,
      );
    return (this.old = credential);
  }

  private nextCredential(): PartnerCredential {
    this.next ??= this.track(this.store.readGeneration(this.journal.next!.generation!, this.readOptions));
    return this.next;
  }

  /** Step 1 and 2: the next key and certificate, written as a generation that is not current. */
  private async makeNext(): Promise<void> {
    const old = this.oldCredential();
    const { certificate, key } = await makeNextKey(
      old,
      {
        directory: this.store.directory,
        commonName: this.opts.commonName ?? commonNameOf(old.certificate),
        days: this.opts.days ?? DEFAULT_DAYS,
        keySize: nextKeySize(old.certificate, this.opts.keySize),
        env: this.readOptions.env ?? {},
      },
      (tokenKey) => this.record('key-planned', { next: { tokenKey } }),
      this.log,
    );
    const { sha256Hex: sha256, sha1Hex: sha1 } = certificate.thumbprints;
    const made = { ...this.journal.next, sha256, sha1 };
    this.record('certificate-made', { next: made });
    const passphrase = this.opts.config.keyPassphrase;
    const generation = this.store.writeGeneration(certificate, key, passphrase ? { passphrase } : {});
    this.record('written', { next: { ...made, generation } });
    this.log(`wrote the next certificate ${sha1} as generation ${generation}`);
  }

  /** A rerun before the new generation was recorded: keep a complete one, else delete the orphan key and start over. */
  private undoIncomplete(): void {
    const next = this.journal.next!;
    const generation =
      next.sha256 !== undefined ? generationWith(this.store.directory, next.sha256) : undefined;
    if (generation !== undefined) {
      this.log(`the next generation ${generation} was complete: continuing with it`);
      this.record('written', { next: { ...next, generation } });
      return;
    }
    if (next.tokenKey)
      deletePlannedKey(this.store.directory, next.tokenKey, this.readOptions.env ?? {}, this.log);
    const { next: _dropped, ...rest } = this.journal;
    this.journal = rest;
    this.record('started');
  }

  /** Step 3: addKey (after the probe, on a rerun); the refused result, or undefined once added. */
  private async register(): Promise<RotationResult | undefined> {
    const next = this.nextCredential();
    const { certificate } = next;
    if (this.probeFirst) {
      this.probeFirst = false;
      if (await this.opts.graph.isRegistered(next)) {
        const found = await this.opts.graph.keyIdOf(certificate, next);
        if (found === null)
          throw new RotationError(
            `the next certificate ${certificate.thumbprints.sha1Hex} authenticates, but is not among the application's keyCredentials; nothing was changed: run "cert rotate" again`,
          );
        this.log(
          `the next certificate is registered already (addKey was done, or the API owner uploaded it); its keyId: ${found ?? "unknown (the application's keyCredentials cannot be read with the partner's token)"}`,
        );
        this.record('added', {
          next: { ...this.journal.next, ...(found ? { keyId: found } : { keyIdUnknown: true }) },
        });
        return undefined;
      }
      this.log('the next certificate is not registered (AADSTS700027): sending addKey');
    }
    const displayName = `${commonNameOf(certificate)} ${certificate.notBefore.toISOString().slice(0, 10)}`;
    const outcome = await this.opts.graph.addKey(this.oldCredential(), certificate, displayName);
    if (outcome.kind === 'refused') {
      this.record('refused', {
        refused: { status: outcome.status, ...(outcome.reason ? { reason: outcome.reason } : {}) },
      });
      return {
        status: 'refused',
        nextCerPath: next.cerPath,
        ...this.recoveredField(),
        message: `addKey was refused (HTTP ${outcome.status}${outcome.reason ? `: ${outcome.reason}` : ''}); send ${next.cerPath} to the API owner to upload, then run "cert rotate" again: it finds the certificate registered and switches to it (generation ${this.journal.next!.generation}, not current until then)`,
      };
    }
    this.log(`registered the next certificate ${certificate.thumbprints.sha1Hex} as keyId ${outcome.keyId}`);
    this.record('added', { next: { ...this.journal.next, keyId: outcome.keyId } });
    return undefined;
  }

  /** Step 4: the keyId into the new generation, then the one atomic switch. */
  private async switchToNext(): Promise<void> {
    const { generation, keyId } = this.journal.next!;
    if (keyId !== undefined) this.store.setKeyId(generation!, keyId);
    this.store.switchTo(generation!);
    this.record('switched', { switchedAt: new Date().toISOString() });
    this.log('switched to the new certificate');
    if (this.opts.onSwitch) {
      await this.opts.onSwitch(this.nextCredential());
      this.handedOver = true;
    }
  }

  /** Step 5: removeKey of the old certificate, the grace period after the switch. */
  private async removeOld(): Promise<void> {
    const graceMs = this.opts.graceMs ?? 0;
    const wait = Date.parse(this.journal.switchedAt!) + graceMs - Date.now();
    if (wait > 0) {
      this.log(
        `waiting ${Math.ceil(wait / 1000)} s before removing the old certificate (other replicas switch meanwhile)`,
      );
      await new Promise((r) => setTimeout(r, wait));
    }
    const old = this.oldCredential();
    const next = this.nextCredential();
    let keyId = this.opts.oldKeyId?.toLowerCase() ?? this.journal.old.keyId;
    if (keyId === undefined) {
      const found = await this.opts.graph.keyIdOf(old.certificate, next);
      if (found === null) {
        this.log('the old certificate is not registered any more');
        this.record('removed');
        return;
      }
      if (found === undefined) {
        // removeKey cannot be sent, but the new certificate is in use and the grace period is
        // over: the old key and generation go all the same (finish), the message names the
        // certificate left registered.
        this.record('removed', { old: { ...this.journal.old, keyIdUnknown: true } });
        this.log(
          `the keyId of the old certificate is not known here: it stays registered, its key is deleted`,
        );
        return;
      }
      keyId = found;
    }
    if (keyId === this.journal.next!.keyId)
      throw new RotationError(
        `the keyId to remove, ${keyId}, is the new certificate's; nothing was removed: run "cert rotate --old-key-id <the old certificate's keyId>" (Entra admin center, Certificates & secrets, lists it)`,
      );
    if ((await this.opts.graph.removeKey(keyId, next)) === 'gone') {
      if (await this.opts.graph.isRegistered(old))
        throw new RotationError(
          `removeKey says keyId ${keyId} is not on the application, yet the old certificate ${old.certificate.thumbprints.sha1Hex} still authenticates: its keyId is another one; run "cert rotate --old-key-id <its keyId>" (Entra admin center, Certificates & secrets, lists it)`,
        );
      this.log(`the old certificate (keyId ${keyId}) was removed already`);
    } else this.log(`removed the old certificate (keyId ${keyId})`);
    this.removedKeyId = keyId;
    this.record('removed', { old: { ...this.journal.old, keyId } });
  }

  /** The old key pair and generation go (after rotation-cleanup.ts's checks), then the journal. */
  private finish(): RotationResult {
    const { old } = this.journal;
    if (this.old && this.old !== this.opts.current) this.old.close();
    const leftInToken = removeOldGeneration(this.store, old, this.readOptions.env ?? {}, this.log);
    removeJournal(this.store.directory);
    const next = this.nextCredential();
    const { keyId } = this.journal.next!;
    const removedKeyId = this.removedKeyId ?? (this.recovered === 'removed' ? old.keyId : undefined);
    const oldStillRegistered = old.keyIdUnknown ? old.sha1 : undefined;
    const parts = [
      `rotated to ${next.certificate.thumbprints.sha1Hex} (${keyId ? `keyId ${keyId}` : 'keyId unknown'})`,
      ...(removedKeyId ? [`removed keyId ${removedKeyId}`] : []),
      ...(keyId
        ? []
        : [
            `the keyId of the new certificate is not known here: addKey's answer was lost and the partner may not read its application's keyCredentials (grant it Application.Read.All to have it found); the Entra admin center lists it under Certificates & secrets (thumbprint ${next.certificate.thumbprints.sha1Hex}); give it to the next rotation with --old-key-id`,
          ]),
      ...(oldStillRegistered
        ? [
            `the old certificate ${oldStillRegistered} is still registered: its keyId is not known here, so removeKey could not be sent; its private key and generation are deleted, so it can sign nothing, but ask the API owner to remove it (Entra admin center, Certificates & secrets, thumbprint ${oldStillRegistered})`,
          ]
        : []),
      ...(leftInToken ? [leftInToken] : []),
    ];
    return {
      status: 'rotated',
      credential: next,
      ...(keyId ? { keyId } : {}),
      ...(removedKeyId ? { removedKeyId } : {}),
      ...(oldStillRegistered ? { oldStillRegistered } : {}),
      ...this.recoveredField(),
      message: parts.join('; '),
    };
  }

  private recoveredField(): { recovered?: RotationState } {
    return this.recovered ? { recovered: this.recovered } : {};
  }

  close(): void {
    for (const credential of this.opened)
      if (!(this.handedOver && credential === this.next)) credential.close();
  }
}
