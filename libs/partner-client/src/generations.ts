/**
 * The certificate directory's layout: each certificate generation in a directory of its own,
 * and one symlink, `current`, naming the generation in use. Switching generations is one
 * rename(2) of a new symlink over `current`, so a reader, a running worker or a process killed
 * at any moment sees the old generation or the new one, never a mix of both:
 *
 *   <dir>/current -> generations/20261130T081500Z-3f2a9c0d1e4b
 *   <dir>/partner.crt.pem -> current/partner.crt.pem    (fixed links: the old paths keep working)
 *   <dir>/generations/<gen>/partner.crt.pem, partner.cer, partner.key.pem | partner.key.p11, partner.key-id
 *
 * A generation is written in a temporary directory and renamed into place complete; once there
 * it is never rewritten, except its `partner.key-id`, which is written atomically.
 *
 * A directory of the first layout (the files directly in `<dir>`) is read as it is and adopted
 * as a generation before the first switch. Every step of that migration leaves the same
 * certificate readable: the files are copied into a generation, `current` is made, and only
 * then is each file replaced by its link, one rename each.
 */
import { randomBytes } from 'node:crypto';
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { parseCertificate, syncDirectory, writeFileAtomic, type ParsedCertificate } from '@certflow/certs';

export const PRIVATE_KEY_FILE = 'partner.key.pem';
/** A key kept in a PKCS#11 token: one line, the key's PKCS#11 URI (RFC 7512), never a PIN. */
export const KEY_REFERENCE_FILE = 'partner.key.p11';
export const CERTIFICATE_FILE = 'partner.crt.pem';
export const CER_FILE = 'partner.cer';
/** The keyId Graph gave this generation's certificate, when it is known. */
export const KEY_ID_FILE = 'partner.key-id';
export const CURRENT_LINK = 'current';
export const GENERATIONS_DIR = 'generations';
/** The names linked from `<dir>` into `current`, in the order a migration replaces them. */
export const LINKED_FILES = [KEY_ID_FILE, CER_FILE, CERTIFICATE_FILE, KEY_REFERENCE_FILE, PRIVATE_KEY_FILE];

const GENERATION_NAME = /^\d{8}T\d{6}Z-[0-9a-f]{12}(?:-\d{1,3})?$/;
const TEMPORARY = /^\.(?:tmp|trash|link)-[0-9a-f]{12}$/;
/** writeFileAtomic's temporary file for `<name>` (libs/certs files.ts). */
const WRITE_TEMPORARY = /^\..+\.[0-9a-f]{12}\.tmp$/;

export class LayoutError extends Error {
  override readonly name = 'LayoutError';
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(message);
  }
}

export function isGenerationName(name: string): boolean {
  return GENERATION_NAME.test(name);
}

/** `<notBefore as yyyymmddThhmmssZ>-<first 12 hex of the SHA-256 thumbprint>`: one name per certificate. */
export function generationBaseName(certificate: ParsedCertificate): string {
  const stamp = certificate.notBefore
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
  return `${stamp}-${certificate.thumbprints.sha256Hex.slice(0, 12).toLowerCase()}`;
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function temporaryName(kind: 'tmp' | 'trash' | 'link'): string {
  return `.${kind}-${randomBytes(6).toString('hex')}`;
}

/** Makes `linkPath` a symlink to `target` by renaming a new link over it: atomic. */
function replaceWithSymlink(linkPath: string, target: string, parent: string): void {
  const tmp = join(parent, temporaryName('link'));
  symlinkSync(target, tmp);
  try {
    renameSync(tmp, linkPath);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

export class GenerationLayout {
  readonly generationsDir: string;
  readonly currentPath: string;

  constructor(readonly directory: string) {
    this.generationsDir = join(directory, GENERATIONS_DIR);
    this.currentPath = join(directory, CURRENT_LINK);
  }

  /** The generation `current` names; undefined for a directory of the first layout. */
  current(): string | undefined {
    let target: string;
    try {
      target = readlinkSync(this.currentPath);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      if (code === 'EINVAL')
        throw new LayoutError(
          `${this.currentPath} must be a symlink into ${GENERATIONS_DIR}/`,
          this.currentPath,
        );
      throw err;
    }
    const name = /^generations\/([^/]+)$/.exec(target)?.[1];
    if (name === undefined || !isGenerationName(name))
      throw new LayoutError(
        `${this.currentPath} points to ${JSON.stringify(target)}, not to a generation in ${GENERATIONS_DIR}/`,
        this.currentPath,
      );
    if (!exists(join(this.generationsDir, name)))
      throw new LayoutError(
        `${this.currentPath} points to ${target}, which does not exist`,
        this.currentPath,
      );
    return name;
  }

  /** The directory holding the files in use: the current generation's, or `<dir>` itself. */
  activeDirectory(): string {
    const gen = this.current();
    return gen === undefined ? this.directory : this.path(gen);
  }

  path(gen: string): string {
    if (!isGenerationName(gen)) throw new LayoutError(`not a generation name: ${JSON.stringify(gen)}`, gen);
    return join(this.generationsDir, gen);
  }

  /** Generation names, oldest certificate first. */
  list(): string[] {
    if (!exists(this.generationsDir)) return [];
    return readdirSync(this.generationsDir).filter(isGenerationName).sort();
  }

  /**
   * Writes `files` as a new generation: a temporary directory, each file flushed, renamed into
   * place complete, named `base` (generationBaseName), with a suffix when that is taken.
   */
  write(base: string, files: Record<string, { data: string | Uint8Array; mode: number }>): string {
    if (!isGenerationName(base))
      throw new LayoutError(`not a generation name: ${JSON.stringify(base)}`, base);
    mkdirSync(this.generationsDir, { recursive: true, mode: 0o700 });
    const tmp = join(this.generationsDir, temporaryName('tmp'));
    mkdirSync(tmp, { mode: 0o700 });
    try {
      for (const [name, { data, mode }] of Object.entries(files))
        writeFileAtomic(join(tmp, name), data, mode);
      syncDirectory(tmp);
      for (let n = 1; ; n++) {
        const name = n === 1 ? base : `${base}-${n}`;
        if (n > 999) throw new LayoutError(`too many generations named ${base}`, this.generationsDir);
        if (exists(join(this.generationsDir, name))) continue;
        renameSync(tmp, join(this.generationsDir, name));
        syncDirectory(this.generationsDir);
        return name;
      }
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * Points `current` at `gen` (one rename), after adopting a directory of the first layout as a
   * generation; then makes sure the fixed links exist.
   */
  switchTo(gen: string): void {
    const target = this.path(gen);
    if (!statSync(target).isDirectory()) throw new LayoutError(`${target} is not a directory`, target);
    this.adoptFirstLayout();
    replaceWithSymlink(this.currentPath, `${GENERATIONS_DIR}/${gen}`, this.directory);
    syncDirectory(this.directory);
    this.linkFiles(gen);
  }

  /** Deletes a generation that is not current: renamed out of the way first, so no half of it keeps its name. */
  remove(gen: string): void {
    if (gen === this.current())
      throw new LayoutError(`${gen} is the current generation; switch to another one first`, this.path(gen));
    const path = this.path(gen);
    if (!exists(path)) return;
    const trash = join(this.generationsDir, temporaryName('trash'));
    renameSync(path, trash);
    syncDirectory(this.generationsDir);
    rmSync(trash, { recursive: true, force: true });
  }

  /**
   * Removes what a process killed half-way left behind: temporary generations, generations being
   * deleted, links not yet renamed into place, and the temporary files of atomic writes
   * (`.<name>.<12 hex>.tmp`: the rotation journal's here, a keyId's in a generation). Only while
   * no other process writes here (the rotation lock).
   */
  removeLeftovers(): string[] {
    const removed: string[] = [];
    const sweep = (dir: string, temporary: (name: string) => boolean) => {
      if (!exists(dir)) return;
      for (const name of readdirSync(dir)) {
        if (!temporary(name)) continue;
        rmSync(join(dir, name), { recursive: true, force: true });
        removed.push(join(dir, name));
      }
    };
    const leftover = (name: string) => TEMPORARY.test(name) || WRITE_TEMPORARY.test(name);
    sweep(this.directory, leftover);
    sweep(this.generationsDir, leftover);
    for (const gen of this.list()) sweep(this.path(gen), (name) => WRITE_TEMPORARY.test(name));
    return removed;
  }

  /**
   * The first layout's files, when `<dir>` holds them as regular files: copied into a generation
   * that `current` then names, then replaced by links (also finishing an adoption a crash
   * interrupted). Returns the current generation (undefined when there is nothing).
   */
  adoptFirstLayout(): string | undefined {
    let gen = this.current();
    if (gen === undefined) {
      const present = LINKED_FILES.filter((name) => {
        const path = join(this.directory, name);
        return exists(path) && lstatSync(path).isFile();
      });
      if (present.length === 0) return undefined;
      let base: string;
      try {
        base = generationBaseName(parseCertificate(readFileSync(join(this.directory, CERTIFICATE_FILE))));
      } catch {
        // A damaged directory is kept too (it may be all someone has), under a name of its own.
        base = `19700101T000000Z-${randomBytes(6).toString('hex')}`;
      }
      const files: Record<string, { data: Buffer; mode: number }> = {};
      for (const name of present) {
        const path = join(this.directory, name);
        files[name] = { data: readFileSync(path), mode: statSync(path).mode & 0o777 };
      }
      // An adoption killed before `current` was made left its copy: take it rather than a second one.
      gen = this.list().find((g) => (g === base || g.startsWith(`${base}-`)) && this.holdsExactly(g, files));
      gen ??= this.write(base, files);
      replaceWithSymlink(this.currentPath, `${GENERATIONS_DIR}/${gen}`, this.directory);
      syncDirectory(this.directory);
    }
    this.linkFiles(gen);
    return gen;
  }

  /** Whether generation `gen` holds exactly `files` (names and bytes), as a copy made by an adoption does. */
  private holdsExactly(gen: string, files: Record<string, { data: Buffer }>): boolean {
    const dir = this.path(gen);
    const names = readdirSync(dir).filter((name) => !name.startsWith('.'));
    return (
      names.length === Object.keys(files).length &&
      names.every(
        (name) => files[name] !== undefined && readFileSync(join(dir, name)).equals(files[name]!.data),
      )
    );
  }

  /**
   * Refuses a regular file in `<dir>` under one of the linked names that differs from the
   * current generation `gen`: a crash during an adoption leaves the same bytes (harmless), but
   * files copied over the links would be ignored, or lost at the next switch.
   */
  assertNoStrayFiles(gen: string): void {
    for (const name of LINKED_FILES) {
      const path = join(this.directory, name);
      let stat;
      try {
        stat = lstatSync(path);
      } catch {
        continue;
      }
      if (stat.isSymbolicLink()) continue;
      const inGeneration = join(this.path(gen), name);
      if (!stat.isFile() || !exists(inGeneration) || !readFileSync(path).equals(readFileSync(inGeneration)))
        throw new LayoutError(
          `${path} is a file of its own, not the link to ${CURRENT_LINK}/${name}, and differs from the certificate in use (${this.path(gen)}); to use new files, import them with "cert import", then delete ${path}`,
          path,
        );
    }
  }

  /** Each of LINKED_FILES in `<dir>` becomes a link into `current`, one rename each (see assertNoStrayFiles). */
  private linkFiles(gen: string): void {
    this.assertNoStrayFiles(gen);
    for (const name of LINKED_FILES) {
      const path = join(this.directory, name);
      const wanted = `${CURRENT_LINK}/${name}`;
      let link: string | undefined;
      try {
        link = readlinkSync(path);
      } catch {
        link = undefined;
      }
      if (link !== wanted) replaceWithSymlink(path, wanted, this.directory);
    }
    syncDirectory(this.directory);
  }
}
