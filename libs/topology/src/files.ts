/**
 * The files a topology names: they exist, and an APIM policy is a well-formed XML document
 * whose root element is `<policies>`, so a broken policy stops the run before anything is
 * written (not when the gateway or APIM reads it later).
 */
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { printable } from './quote';

/** Larger policy files are refused (APIM's own limit is far below this). */
const MAX_POLICY_BYTES = 256 * 1024;

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The text of UTF-8 `bytes` (a byte order mark is kept); or where it is not UTF-8. */
export function utf8(bytes: Buffer): string | { problem: string } {
  try {
    return decoder.decode(bytes);
  } catch {
    // What decodes and re-encodes unchanged is valid; the first difference is the first bad byte.
    const again = Buffer.from(bytes.toString('utf8'), 'utf8');
    let at = 0;
    while (at < bytes.length && bytes[at] === again[at]) at++;
    const line = bytes.subarray(0, at).toString('latin1').split('\n').length;
    return {
      problem: `not UTF-8 text: byte ${at} (line ${line}) is 0x${bytes[at]!.toString(16).padStart(2, '0')}; save the file as UTF-8`,
    };
  }
}

/** The file `relative` (resolved from `base`) names and its size; or `<path>: …` when it is not one. */
function existingFile(
  path: string,
  relative: string,
  base: string,
): { absolute: string; size: number } | { problem: string } {
  const absolute = resolve(base, relative);
  try {
    const stats = statSync(absolute);
    if (stats.isFile()) return { absolute, size: stats.size };
    return { problem: `${path}: "${relative}" is not a file (${absolute})` };
  } catch {
    return { problem: `${path}: file "${relative}" not found (${absolute})` };
  }
}

/** `<path>: …` when `relative` (resolved from `base`) is not an existing file. */
export function fileProblem(path: string, relative: unknown, base: string): string[] {
  if (typeof relative !== 'string' || relative === '') return [];
  const file = existingFile(path, relative, base);
  return 'problem' in file ? [file.problem] : [];
}

/** The root element names of a parsed document (declarations, comments and text left out). */
function rootElements(text: string): string[] {
  const nodes = new XMLParser({ preserveOrder: true, ignoreDeclaration: true }).parse(text) as Record<
    string,
    unknown
  >[];
  return nodes.flatMap((node) => Object.keys(node).filter((k) => k !== ':@' && !k.startsWith('#')));
}

/** `<path>: <file>: …` when the policy file is missing, too large, not UTF-8, not XML or not `<policies>`. */
export function policyProblems(path: string, relative: unknown, base: string): string[] {
  if (typeof relative !== 'string' || relative === '') return [];
  const file = existingFile(path, relative, base);
  if ('problem' in file) return [file.problem];
  const at = `${path}: ${relative}`;
  if (file.size > MAX_POLICY_BYTES)
    return [`${at}: ${file.size} bytes; a policy file may have at most ${MAX_POLICY_BYTES} bytes`];
  const text = utf8(readFileSync(file.absolute));
  if (typeof text !== 'string') return [`${at}: ${text.problem}`];
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const valid = XMLValidator.validate(body);
  if (valid !== true)
    return [
      `${at}: line ${valid.err.line}, column ${valid.err.col}: not well-formed XML: ${printable(valid.err.msg)}`,
    ];
  const roots = rootElements(body);
  if (roots.length !== 1 || roots[0] !== 'policies')
    return [
      `${at}: the root element must be <policies> (an APIM policy document), found ${roots.length === 0 ? 'none' : roots.map((r) => `<${r}>`).join(', ')}`,
    ];
  return [];
}
