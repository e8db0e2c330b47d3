/**
 * The repository stands on its own: a clone has everything its docs and comments point to.
 * Fails on a relative Markdown link to a file that is not in the repository, and on a path of a
 * development machine (a home directory, the workspace the checkouts live in, a sibling folder
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
const MACHINE_PATHS = [/\/work\//, /\/home\/[a-z][\w-]*\//, /\/Users\/[A-Za-z][\w-]*\//, /\.\.\/shared\//];

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
});
