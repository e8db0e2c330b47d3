/**
 * Picks up a certificate rotated by another process (`cert rotate` from the CLI, or a deployment
 * dropping new files) while `serve` or `run` keeps running: watches PARTNER_CERT_DIR with
 * fs.watch, and polls as a safety net (fs.watch can miss events, e.g. on network file systems).
 *
 * A rotation switches the directory's `current` link to a complete new generation in one rename;
 * a directory of the first layout has its files replaced one by one. Either way, on a change the
 * credential is read and validated exactly as at start-up (CertificateStore.load: key matches
 * certificate, `.cer` is the same certificate, key not readable by others, valid now). A damaged,
 * half-written or mismatched set is ignored with one log line, and the current credential is
 * kept; it is tried again at the next change.
 */
import { readlinkSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { systemClock, type Clock } from '@certflow/clock';
import type { CertificateStore, PartnerCredential, StoreReadOptions } from './certificate-store';
import {
  CERTIFICATE_FILE,
  CER_FILE,
  CURRENT_LINK,
  KEY_REFERENCE_FILE,
  PRIVATE_KEY_FILE,
} from './generations';

export interface CredentialWatcherOptions {
  store: CertificateStore;
  /** The passphrase of a key file, the PKCS#11 settings of a key in a token. */
  read?: StoreReadOptions;
  /** The credential in use now (to tell a new certificate from rewritten identical files). */
  current(): PartnerCredential;
  /** A new, valid credential was loaded; it is the receiver's to close. */
  onChange(next: PartnerCredential): void;
  /** The changed files did not load; the current credential stays. */
  onIgnored(reason: string): void;
  /** Wait this long after the last event before reading (default 150 ms: the files change together). */
  debounceMs?: number;
  /** Also compare the files' state this often (default 2 s). */
  pollMs?: number;
  /** The time a new certificate's validity is checked at (default: the real time). */
  clock?: Clock;
}

export type CheckResult = 'unchanged' | 'switched' | 'ignored';

const FILES = [CURRENT_LINK, PRIVATE_KEY_FILE, KEY_REFERENCE_FILE, CERTIFICATE_FILE, CER_FILE];

export class CredentialWatcher {
  private watcher: FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private lastSignature: string;
  private closed = false;

  constructor(private readonly opts: CredentialWatcherOptions) {
    this.lastSignature = this.signature();
  }

  start(): void {
    try {
      this.watcher = watch(this.opts.store.directory, { persistent: false }, (_event, name) => {
        if (name === null || FILES.includes(String(name))) this.schedule();
      });
      this.watcher.on('error', () => {
        // The directory went away or cannot be watched: polling carries on.
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch {
      // fs.watch is unavailable here: polling alone.
    }
    this.poller = setInterval(() => this.check(), this.opts.pollMs ?? 2_000);
    this.poller.unref();
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    if (this.poller) clearInterval(this.poller);
    if (this.debounce) clearTimeout(this.debounce);
  }

  /** Reads the files if they changed since the last look; switches or ignores. */
  check(): CheckResult {
    if (this.closed) return 'unchanged';
    const signature = this.signature();
    if (signature === this.lastSignature) return 'unchanged';
    this.lastSignature = signature;
    let next: PartnerCredential;
    try {
      next = this.opts.store.load((this.opts.clock ?? systemClock).now(), this.opts.read);
    } catch (err) {
      this.opts.onIgnored((err as Error).message);
      return 'ignored';
    }
    if (next.certificate.thumbprints.sha256Hex === this.opts.current().certificate.thumbprints.sha256Hex) {
      next.close();
      return 'unchanged';
    }
    this.opts.onChange(next);
    return 'switched';
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.check();
    }, this.opts.debounceMs ?? 150);
    this.debounce.unref();
  }

  /**
   * Where `current` points, and size, modification time and inode of each file as read through
   * it ("-" for a missing one): a switch of generations and files rewritten in place both show.
   */
  private signature(): string {
    const dir = this.opts.store.directory;
    let current = '-';
    try {
      current = readlinkSync(join(dir, CURRENT_LINK));
    } catch {
      // the first layout, or nothing yet
    }
    return [
      current,
      ...FILES.slice(1).map((name) => {
        try {
          const s = statSync(join(dir, name));
          return `${s.ino}:${s.size}:${s.mtimeMs}`;
        } catch {
          return '-';
        }
      }),
    ].join('|');
  }
}
