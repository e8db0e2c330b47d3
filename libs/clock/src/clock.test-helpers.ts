import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { expect } from 'vitest';
import { ClockError } from './offset.js';

export function catchError(fn: () => unknown): ClockError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ClockError);
    return err as ClockError;
  }
  throw new Error('expected a ClockError');
}

/** This library as plain ES modules in `dir`, for a second Node.js process to import (`dir`/index.js). */
export function emitLibrary(dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  for (const name of readdirSync(__dirname)) {
    if (!name.endsWith('.ts') || name.includes('.spec.') || name.includes('.test-helpers.')) continue;
    const { outputText } = ts.transpileModule(readFileSync(join(__dirname, name), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    });
    writeFileSync(join(dir, name.replace(/\.ts$/, '.js')), outputText);
  }
  return join(dir, 'index.js');
}
