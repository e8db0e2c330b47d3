/**
 * Picks up a certificate rotated by another process (`cert rotate` from the CLI, or a deployment
 * dropping new files) while `serve` or `run` keeps running: watches PARTNER_CERT_DIR with
 * fs.watch, and polls as a safety net (fs.watch can miss events, e.g. on network file systems).
 *
 * On a change the three files are read and validated exactly as at start-up (CertificateStore.load:
 * key matches certificate, `.cer` is the same certificate, key not readable by others, valid now).
 * A damaged, half-written or mismatched set is ignored with one log line, and the current
 * credential is kept; it is tried again at the next change of the files.
 */
import { statSync, watch, type FSWatcher } from 'node:fs';
import {
  CERTIFICATE_FILE,
  CER_FILE,
  PRIVATE_KEY_FILE,
  type CertificateStore,
  type PartnerCredential,
} from './certificate-store';

export interface CredentialWatcherOptions {
  store: CertificateStore;
  passphrase?: string;
  /** The credential in use now (to tell a new certificate from rewritten identical files). */
  current(): PartnerCredential;
  /** A new, valid credential was loaded. */
  onChange(next: PartnerCredential): void;
  /** The changed files did not load; the current credential stays. */
  onIgnored(reason: string): void;
  /** Wait this long after the last event before reading (default 150 ms: the files change together). */
  debounceMs?: number;
  /** Also compare the files' state this often (default 2 s). */
  pollMs?: number;
}

export type CheckResult = 'unchanged' | 'switched' | 'ignored';

const FILES = [PRIVATE_KEY_FILE, CERTIFICATE_FILE, CER_FILE];

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
      next = this.opts.store.load(new Date(), this.opts.passphrase);
    } catch (err) {
      this.opts.onIgnored((err as Error).message);
      return 'ignored';
    }
    if (next.certificate.thumbprints.sha256Hex === this.opts.current().certificate.thumbprints.sha256Hex)
      return 'unchanged';
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

  /** Size, modification time and inode of the three files ("-" for a missing one). */
  private signature(): string {
    return FILES.map((name) => {
      try {
        const s = statSync(`${this.opts.store.directory}/${name}`);
        return `${s.ino}:${s.size}:${s.mtimeMs}`;
      } catch {
        return '-';
      }
    }).join('|');
  }
}
