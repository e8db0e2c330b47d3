/**
 * Node.js module hooks registered in every VU worker (module.register): `k6` and `k6/…` resolve
 * to the harness's implementation (k6-api.ts); a k6 module it lacks, a remote module, or a
 * Node.js built-in (which k6 does not have) fails the import with a message naming it.
 * Relative imports between the scripts resolve as usual.
 */
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { IMPLEMENTED, README_HINT } from './protocol';

const PREFIX = 'k6-harness:';
const OWN_FILES = pathToFileURL(__dirname).href + '/';

interface ResolveContext {
  parentURL?: string;
}
type NextResolve = (specifier: string, context: ResolveContext) => Promise<{ url: string }>;
type NextLoad = (url: string, context: unknown) => Promise<unknown>;

export async function resolve(specifier: string, context: ResolveContext, next: NextResolve) {
  const from = context.parentURL ? ` (imported by ${context.parentURL})` : '';
  if (specifier === 'k6' || specifier.startsWith('k6/')) {
    if (!(specifier in IMPLEMENTED))
      throw new Error(
        `the k6 module '${specifier}'${from} is not implemented by ${README_HINT}; ` +
          `implemented: ${Object.keys(IMPLEMENTED).join(', ')}`,
      );
    return { url: `${PREFIX}${specifier}`, shortCircuit: true };
  }
  const relative = specifier.startsWith('./') || specifier.startsWith('../') || specifier.startsWith('/');
  if (!context.parentURL || relative || specifier.startsWith('file:')) return next(specifier, context);
  throw new Error(
    `'${specifier}'${from} is neither a k6 module nor a relative script file: not available under k6's ` +
      `runtime nor under the ${README_HINT}`,
  );
}

export async function load(url: string, context: object, next: NextLoad) {
  // k6 runs every script file as an ES module, whatever package.json says (not the harness's own files).
  if (url.startsWith('file:') && url.endsWith('.js') && !url.startsWith(OWN_FILES))
    return next(url, { ...context, format: 'module' });
  if (!url.startsWith(PREFIX)) return next(url, context);
  const name = url.slice(PREFIX.length);
  const api = JSON.stringify(pathToFileURL(join(__dirname, 'k6-api.js')).href);
  const source = [
    `import api from ${api};`,
    `const m = api.modules[${JSON.stringify(name)}];`,
    'export default m;',
    ...IMPLEMENTED[name]!.map((e) => `export const ${e} = m.${e};`),
  ].join('\n');
  return { format: 'module', source, shortCircuit: true };
}
