/**
 * The repository stands on its own: a clone has everything its docs and comments point to.
 * Fails on a relative Markdown link to a file that is not in the repository, on a path in a
 * doc or a comment (`../x/y.ts`, `apps/api/src/main.ts`) that names nothing in the checkout,
 * and on a path of a development machine (a home directory, the workspace the checkouts live in, a sibling folder
 * outside the repository) in any tracked text file. Test fixtures use obviously fake paths such
 * as `/srv/partner`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '../../..');
const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' })
  .split('\0')
  .filter((f) => f !== '' && existsSync(join(ROOT, f)));
const TEXT = /\.(ts|mts|cjs|mjs|js|json|md|xml|yml|yaml|py|java|go|sh|html|css)$|(^|\/)(run|\.gitignore)$/;
const texts = tracked.filter((f) => TEXT.test(f) && f !== 'package-lock.json');

/** Paths that only exist on someone's machine. */
const MACHINE_PATHS = [
  /\/work\//,
  /\/root\//,
  /[A-Z]:\\Users\\/,
  /\/home\/[a-z][\w-]*\//,
  /\/Users\/[A-Za-z][\w-]*\//,
  /\.\.\/shared\//,
];

/**
 * Paths written in prose: relative (`./x`, `../x`) or from the repository root (`apps/…`,
 * `docs/…`). Import lines are the compiler's business, and a path joined to `__dirname` is
 * relative to the built file, not to the source; globs, build output and git-ignored
 * run-time output (`load/results/…`) are not in a checkout by design.
 */
const PROSE_PATH =
  /(?<![\w./@-])((?:\.\.?\/)+[\w.@-]+(?:\/[\w.@-]+)*|(?:apps|libs|tools|docs|load|e2e)\/[\w.@-]+(?:\/[\w.@-]+)*)/g;
// …and a package.json `exports` key (`"./testing": {`) names an entry point, not a file.
const CODE_REFERENCE =
  /^\s*((import|export)\b.*\bfrom\b|\} from |.*\brequire\(|.*\bimport\(|.*\b__dirname\b|"\.\/[\w./-]*": \{)/;
const NOT_IN_A_CHECKOUT = /dist|node_modules|\*|\/etc\/passwd/; // build output, globs, hostile inputs in tests

/** Whether git ignores the path, as a file or (when it does not exist yet) as a directory. */
function isIgnored(path: string): boolean {
  return [path, `${path}/`].some((candidate) => {
    try {
      execFileSync('git', ['check-ignore', '-q', '--no-index', candidate], { cwd: ROOT });
      return true;
    } catch {
      return false;
    }
  });
}

describe('the repository stands on its own', () => {
  it('has tracked text files to check', () => {
    expect(texts.length).toBeGreaterThan(100);
  });

  it('names no path of a development machine', () => {
    const found: string[] = [];
    for (const file of texts) {
      if (file === 'tools/testing/src/repository.spec.ts') continue; // the patterns themselves
      readFileSync(join(ROOT, file), 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (MACHINE_PATHS.some((p) => p.test(line))) found.push(`${file}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(found).toEqual([]);
  });

  it('links in Markdown only to files that are in the repository', () => {
    const broken: string[] = [];
    for (const file of texts.filter((f) => f.endsWith('.md'))) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = match[1]!.split('#')[0]!;
        if (target === '' || /^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // anchors, URLs
        if (!existsSync(resolve(ROOT, dirname(file), decodeURIComponent(target))))
          broken.push(`${file}: ${match[1]}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('names in docs and comments only paths that exist in the checkout', () => {
    const missing: string[] = [];
    for (const file of texts) {
      if (file === 'tools/testing/src/repository.spec.ts') continue; // its own examples
      readFileSync(join(ROOT, file), 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (CODE_REFERENCE.test(line)) return;
          for (const match of line.matchAll(PROSE_PATH)) {
            const path = match[1]!.replace(/\.+$/, '');
            if (NOT_IN_A_CHECKOUT.test(path)) continue;
            const target = path.startsWith('.') ? resolve(ROOT, dirname(file), path) : resolve(ROOT, path);
            if (!existsSync(target) && !isIgnored(target)) missing.push(`${file}:${i + 1}: ${path}`);
          }
        });
    }
    expect(missing).toEqual([]);
  });
});
