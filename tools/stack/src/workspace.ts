import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

/** The certflow checkout this tool runs from (the directory holding nx.json). */
export function workspaceRoot(from = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'nx.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`cannot find the certflow workspace (nx.json) above ${from}`);
  }
}

/** Built entry points of the apps the stack runs as separate processes. */
export function appEntryPoint(app: 'api' | 'partner-worker'): string {
  const path = join(workspaceRoot(), 'apps', app, 'dist', 'main.js');
  if (!existsSync(path)) {
    throw new Error(
      `${path} is missing: build first (npx nx run-many -t build), or use npm start, which builds`,
    );
  }
  return path;
}

/** A path relative to the checkout when inside it (shorter to read), else as it is. */
export function shownPath(path: string): string {
  const rel = relative(workspaceRoot(), path);
  return rel.startsWith('..') || rel === '' ? path : rel;
}
