/**
 * An open session with one token: key pairs generated inside it (sensitive, never extractable),
 * looked up by the URI's id or label, and KeySigners that sign through it.
 *
 * Everything here but signing calls pkcs11js synchronously: the contract's methods are
 * synchronous, and finding, generating and deleting objects happen once per command or rotation,
 * not per request. Signing is asynchronous (see signer.ts).
 */
import * as pkcs11js from 'pkcs11js';
import { Pkcs11Error, cryptoki, hasControl, quote } from './errors';
import type { KeySigner } from '@certflow/certs';
import {
  BINDING_PREFIX,
  KEY_SIZES,
  keyPairTemplate,
  readKeyAttributes,
  unhonoured,
  type Pkcs11KeyAttributes,
} from './key-template';
import { acquireModule, login, logout, releaseModule, type LoadedModule } from './module';
import type { Pkcs11Settings } from './settings';
import { SigningSession, pkcs11Signer, rsaPublicKey } from './signer';
import { findToken } from './slots';
import { describeObject, formatPkcs11Uri, type Pkcs11Uri } from './uri';

export type { Pkcs11KeyAttributes } from './key-template';

/** How messages name a token: its label and the module it was reached through. */
function tokenWhere(label: string, module: LoadedModule): string {
  return `token ${quote(label)} (module ${module.path})`;
}

export class Pkcs11Token {
  private closed = false;
  private signing: SigningSession | undefined;

  private constructor(
    private readonly module: LoadedModule,
    private readonly slotKey: string,
    private readonly slot: Buffer,
    private readonly session: Buffer,
    /** The token's label. */
    readonly label: string,
    /** The token's serial number ('' when it reports none). */
    private readonly serial: string,
    private readonly openedWith: Pkcs11Uri,
  ) {}

  /**
   * Loads the module (once per process per path), finds the one token matching the URI, opens a
   * R/W session and logs in as the user with the PIN: exactly one C_Login, never retried.
   */
  static open(uri: Pkcs11Uri, settings: Pkcs11Settings): Pkcs11Token {
    const module = acquireModule(settings.modulePath);
    let session: Buffer | undefined;
    try {
      const token = findToken(module, uri);
      const where = tokenWhere(token.label, module);
      if (token.flags & pkcs11js.CKF_USER_PIN_LOCKED) {
        throw new Pkcs11Error(
          'ERR_PKCS11_PIN_LOCKED',
          `the user PIN of ${where} is locked; its security officer must unlock it (no login attempted)`,
          'CKR_PIN_LOCKED',
        );
      }
      if (!(token.flags & pkcs11js.CKF_USER_PIN_INITIALIZED)) {
        throw new Pkcs11Error(
          'ERR_PKCS11',
          `${where} has no user PIN set (initialise it with its security officer PIN)`,
        );
      }
      const pinLength = Buffer.byteLength(settings.pin, 'utf8');
      if (pinLength < token.minPinLen || pinLength > token.maxPinLen) {
        // Refused here: a login with it would be refused too, and count towards the lockout.
        throw new Pkcs11Error(
          'ERR_PKCS11_PIN_INCORRECT',
          `the PIN for ${where} is ${pinLength} bytes long; the token accepts ${token.minPinLen} to ${token.maxPinLen} (no login attempted)`,
        );
      }
      const opened = cryptoki(`opening a session with ${where}`, () =>
        module.pkcs11.C_OpenSession(token.slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION),
      );
      session = opened;
      const slotKey = token.slot.toString('hex');
      login(module, opened, slotKey, settings.pin, token.label);
      return new Pkcs11Token(module, slotKey, token.slot, opened, token.label, token.serial, uri);
    } catch (err) {
      try {
        if (session) module.pkcs11.C_CloseSession(session);
      } finally {
        releaseModule(module);
      }
      throw err;
    }
  }

  private get where(): string {
    return tokenWhere(this.label, this.module);
  }

  private call<T>(doing: string, fn: (p: pkcs11js.PKCS11) => T): T {
    if (this.closed)
      throw new Pkcs11Error('ERR_PKCS11', `${doing} in ${this.where}: the token has been closed`);
    return cryptoki(`${doing} in ${this.where}`, () => fn(this.module.pkcs11));
  }

  private find(template: pkcs11js.Template, what: string): Buffer[] {
    return this.call(`looking for ${what}`, (p) => {
      p.C_FindObjectsInit(this.session, template);
      try {
        const found: Buffer[] = [];
        for (
          let batch = p.C_FindObjects(this.session, 64);
          batch.length;
          batch = p.C_FindObjects(this.session, 64)
        ) {
          found.push(...batch);
        }
        return found;
      } finally {
        p.C_FindObjectsFinal(this.session);
      }
    });
  }

  /** Template selecting the URI's object: by id and label (whichever are given), of one class. */
  private selector(keyUri: Pkcs11Uri, objectClass?: number): pkcs11js.Template {
    if (keyUri.id === undefined && keyUri.object === undefined) {
      throw new Pkcs11Error(
        'ERR_PKCS11_URI',
        `the key URI names no object: give object=<label> or id=<bytes>`,
      );
    }
    const template: pkcs11js.Template = [];
    if (objectClass !== undefined) template.push({ type: pkcs11js.CKA_CLASS, value: objectClass });
    if (keyUri.id !== undefined) template.push({ type: pkcs11js.CKA_ID, value: keyUri.id });
    if (keyUri.object !== undefined) template.push({ type: pkcs11js.CKA_LABEL, value: keyUri.object });
    return template;
  }

  private privateKeys(keyUri: Pkcs11Uri): Buffer[] {
    if (keyUri.type !== undefined && keyUri.type !== 'private') {
      throw new Pkcs11Error(
        'ERR_PKCS11_URI',
        `the key URI has type=${keyUri.type}; a signing key is type=private`,
      );
    }
    return this.find(
      this.selector(keyUri, pkcs11js.CKO_PRIVATE_KEY),
      `the private key with ${describeObject(keyUri)}`,
    );
  }

  private privateKey(keyUri: Pkcs11Uri): Buffer {
    const keys = this.privateKeys(keyUri);
    if (keys.length === 1) return keys[0]!;
    if (keys.length === 0) {
      throw new Pkcs11Error(
        'ERR_PKCS11_OBJECT_NOT_FOUND',
        `no private key with ${describeObject(keyUri)} in ${this.where}`,
      );
    }
    throw new Pkcs11Error(
      'ERR_PKCS11_OBJECT_AMBIGUOUS',
      `${keys.length} private keys with ${describeObject(keyUri)} in ${this.where}; name one by its id`,
    );
  }

  /**
   * A new RSA key pair inside the token (e = 65537). The private key is a token object, private,
   * sensitive, not extractable and can only sign; both objects are CKA_MODIFIABLE=false and carry
   * `binding` (what they were made for: "certflow:…") in CKA_SUBJECT. Afterwards the private
   * key's attributes are read back and the pair is destroyed if the token did not honour them.
   * Returns the private key's canonical URI, naming the token by its label and serial number.
   */
  generateRsaKeyPair(opts: {
    label: string;
    id: Buffer;
    bits: 2048 | 3072 | 4096;
    binding?: string;
  }): string {
    const { label, id, bits, binding } = opts;
    if (binding !== undefined && !binding.startsWith(BINDING_PREFIX))
      throw new Pkcs11Error(
        'ERR_PKCS11',
        `a key binding starts with ${BINDING_PREFIX}, not ${quote(binding)}`,
      );
    if (!label) throw new Pkcs11Error('ERR_PKCS11_URI', 'a key pair needs a non-empty label');
    if (hasControl(label))
      throw new Pkcs11Error('ERR_PKCS11_URI', `key label ${quote(label)} holds a control character`);
    if (!id.length) throw new Pkcs11Error('ERR_PKCS11_URI', `key pair ${quote(label)} needs a non-empty id`);
    if (!KEY_SIZES.includes(bits))
      throw new Pkcs11Error('ERR_PKCS11', `RSA key size ${bits} is not one of ${KEY_SIZES}`);
    const named = { object: label, id };
    const byLabel = this.find(
      [{ type: pkcs11js.CKA_LABEL, value: label }],
      `objects labelled ${quote(label)}`,
    );
    const byId = this.find([{ type: pkcs11js.CKA_ID, value: id }], `objects with id ${id.toString('hex')}`);
    if (byLabel.length || byId.length) {
      const clash = byLabel.length ? `label ${quote(label)}` : `id ${id.toString('hex')}`;
      throw new Pkcs11Error(
        'ERR_PKCS11_OBJECT_EXISTS',
        `${this.where} already holds an object with ${clash}; nothing generated`,
      );
    }
    const template = keyPairTemplate(label, id, bits, binding);
    const pair = this.call(`generating RSA-${bits} key pair ${quote(label)}`, (p) =>
      p.C_GenerateKeyPair(
        this.session,
        { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN },
        template.publicKey,
        template.privateKey,
      ),
    );
    try {
      const a = this.attributesOf(pair.privateKey, named);
      const broken = unhonoured(a, binding);
      if (broken.length) {
        throw new Pkcs11Error(
          'ERR_PKCS11',
          `${this.where} did not honour the private key template of ${quote(label)} (${broken.join(', ')}); the pair was destroyed`,
        );
      }
    } catch (err) {
      for (const handle of [pair.privateKey, pair.publicKey]) {
        this.call(`destroying the rejected key pair ${quote(label)}`, (p) =>
          p.C_DestroyObject(this.session, handle),
        );
      }
      throw err;
    }
    const { modulePath, pinSource } = this.openedWith;
    // The serial too: a stored key URI names exactly one token even if another has the same label.
    const serial = this.serial || undefined;
    return formatPkcs11Uri({
      token: this.label,
      serial,
      object: label,
      id,
      type: 'private',
      modulePath,
      pinSource,
    });
  }

  private attributesOf(handle: Buffer, keyUri: Pkcs11Uri): Pkcs11KeyAttributes {
    return this.call(`reading the attributes of the private key with ${describeObject(keyUri)}`, (p) =>
      readKeyAttributes(p, this.session, handle),
    );
  }

  /** A KeySigner (kind 'pkcs11') for the private key the URI names. */
  signer(keyUri: Pkcs11Uri): KeySigner {
    const key = this.privateKey(keyUri);
    const keyName = `the private key with ${describeObject(keyUri)}`;
    const publicKey = this.call(`reading the public part of ${keyName}`, () =>
      rsaPublicKey(this.module.pkcs11, this.session, key, keyName),
    );
    if (!this.signing) {
      const session = this.call('opening a signing session', (p) =>
        p.C_OpenSession(this.slot, pkcs11js.CKF_SERIAL_SESSION),
      );
      this.signing = new SigningSession(this.module.pkcs11, session, this.label);
    }
    const { modulePath, pinSource } = this.openedWith;
    const description = formatPkcs11Uri({
      modulePath,
      pinSource,
      ...keyUri,
      token: keyUri.token ?? this.label,
    });
    return pkcs11Signer(this.signing, key, keyName, publicKey, description);
  }

  hasKey(keyUri: Pkcs11Uri): boolean {
    return this.privateKeys(keyUri).length > 0;
  }

  keyAttributes(keyUri: Pkcs11Uri): Pkcs11KeyAttributes {
    return this.attributesOf(this.privateKey(keyUri), keyUri);
  }

  /**
   * Destroys the private and public keys with the URI's id (or label); with `binding`, only those
   * whose CKA_SUBJECT is that binding. False when none existed.
   */
  deleteKeyPair(keyUri: Pkcs11Uri, opts: { binding?: string } = {}): boolean {
    const bound: pkcs11js.Template =
      opts.binding !== undefined
        ? [{ type: pkcs11js.CKA_SUBJECT, value: Buffer.from(opts.binding, 'utf8') }]
        : [];
    const handles = [pkcs11js.CKO_PRIVATE_KEY, pkcs11js.CKO_PUBLIC_KEY].flatMap((objectClass) =>
      this.find([...this.selector(keyUri, objectClass), ...bound], `the keys with ${describeObject(keyUri)}`),
    );
    for (const handle of handles) {
      this.call(`destroying a key with ${describeObject(keyUri)}`, (p) =>
        p.C_DestroyObject(this.session, handle),
      );
    }
    return handles.length > 0;
  }

  /** Logs out, closes the sessions, finalizes the module when its last user closes. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const teardown = () => {
      try {
        logout(this.module, this.session, this.slotKey);
        this.module.pkcs11.C_CloseSession(this.session);
      } finally {
        releaseModule(this.module);
      }
    };
    if (this.signing) this.signing.close(teardown);
    else teardown();
  }
}
