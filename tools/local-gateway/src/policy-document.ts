/**
 * An APIM policy document at API scope:
 *
 *   <policies>
 *     <inbound> <base /> … </inbound>
 *     <backend> <base /> | <forward-request /> </backend>
 *     <outbound> <base /> … </outbound>
 *     <on-error> <base /> … </on-error>
 *   </policies>
 *
 * There is no product or global scope above it here, so `<base />` inherits nothing: it is a
 * no-op in inbound, outbound and on-error, and in backend it stands for the global default,
 * `<forward-request />`. Every element and attribute is checked when the file is loaded;
 * anything this gateway does not implement is a load error naming file, line and element.
 */
import { readFileSync } from 'node:fs';
import type { OpenIdMetadataCache } from './openid-metadata-cache';
import type { PolicySection, PolicyStatement } from './policy-context';
import { ElementReader, parsePolicyXml, PolicyElement, PolicyLoadError } from './policy-xml';
import { compileRateLimitByKey } from './rate-limit-policy';
import { MemoryRateLimitStore, RateLimitStore, RateLimitStoreUnavailable } from './rate-limit-store';
import { compileReturnResponse } from './return-response-policy';
import { compileSetHeader } from './set-header-policy';
import { compileValidateJwt } from './validate-jwt-policy';

export interface BackendSettings {
  /** forward-request `timeout` (APIM default 300 s). */
  timeoutMs: number;
}

export interface PolicyDocument {
  readonly file: string;
  readonly inbound: readonly PolicyStatement[];
  readonly backend: BackendSettings;
  readonly outbound: readonly PolicyStatement[];
  readonly onError: readonly PolicyStatement[];
}

export interface PolicyLoadOptions {
  namedValues: Readonly<Record<string, string>>;
  /** The shared metadata cache for an openid-config URL. */
  metadataCache(url: string): OpenIdMetadataCache;
  /** Counters for rate-limit-by-key; default: a new in-memory store for this document. */
  rateLimitStore?: RateLimitStore;
  /** Told when the counter store fails and a request is let through (fail-open). */
  onRateLimitStoreUnavailable?(err: RateLimitStoreUnavailable): void;
}

type Compiler = (file: string, element: PolicyElement, section: PolicySection, opts: PolicyLoadOptions) => PolicyStatement;

const COMPILERS: Record<string, { sections: PolicySection[]; compile: Compiler }> = {
  'validate-jwt': { sections: ['inbound'], compile: (file, el, _s, opts) => compileValidateJwt(el, { file, metadataCache: opts.metadataCache }) },
  'set-header': { sections: ['inbound', 'outbound', 'on-error'], compile: (file, el, section) => compileSetHeader(file, el, section) },
  'rate-limit-by-key': {
    sections: ['inbound'],
    compile: (file, el, _s, opts) =>
      compileRateLimitByKey(el, { file, store: opts.rateLimitStore!, onStoreUnavailable: opts.onRateLimitStoreUnavailable ?? (() => undefined) }),
  },
  'return-response': { sections: ['inbound', 'outbound', 'on-error'], compile: (file, el) => compileReturnResponse(file, el) },
};

/** APIM policies a later version of this gateway is expected to support: refused with a clearer message. */
const NOT_YET = new Set([
  'validate-azure-ad-token',
  'rate-limit',
  'quota',
  'quota-by-key',
  'check-header',
  'ip-filter',
  'set-backend-service',
  'validate-client-certificate',
  'choose',
  'set-variable',
  'send-request',
  'cors',
  'mock-response',
  'rewrite-uri',
  'set-query-parameter',
  'set-body',
  'set-status',
]);

const SECTIONS: Record<string, PolicySection> = { inbound: 'inbound', backend: 'backend', outbound: 'outbound', 'on-error': 'on-error' };
const DEFAULT_BACKEND_TIMEOUT_MS = 300_000;

export function loadPolicyDocument(file: string, opts: PolicyLoadOptions): PolicyDocument {
  let xml: string;
  try {
    xml = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PolicyLoadError(file, undefined, undefined, `cannot read policy file: ${(err as Error).message}`);
  }
  return compilePolicyDocument(xml, file, opts);
}

export function compilePolicyDocument(xml: string, file: string, loadOpts: PolicyLoadOptions): PolicyDocument {
  const opts: PolicyLoadOptions = { ...loadOpts, rateLimitStore: loadOpts.rateLimitStore ?? new MemoryRateLimitStore() };
  const root = parsePolicyXml(xml, { file, namedValues: opts.namedValues });
  const r = new ElementReader(file, root);
  if (root.name !== 'policies') throw r.error('the root element must be <policies>');
  r.allowAttributes([]);
  r.noText();
  r.allowChildren(Object.keys(SECTIONS), [], Object.keys(SECTIONS));

  const statements = (name: string): PolicyStatement[] => {
    const section = r.children(name)[0];
    return section ? compileSection(file, section, SECTIONS[name]!, opts) : [];
  };
  const backendElement = r.children('backend')[0];
  return {
    file,
    inbound: statements('inbound'),
    backend: backendElement ? compileBackend(file, backendElement) : { timeoutMs: DEFAULT_BACKEND_TIMEOUT_MS },
    outbound: statements('outbound'),
    onError: statements('on-error'),
  };
}

function compileSection(file: string, element: PolicyElement, section: PolicySection, opts: PolicyLoadOptions): PolicyStatement[] {
  const r = new ElementReader(file, element);
  r.allowAttributes([]);
  r.noText();
  const result: PolicyStatement[] = [];
  let sawBase = false;
  for (const child of element.children) {
    if (child.name === 'base') {
      compileBase(file, child, sawBase);
      sawBase = true;
      continue; // API scope with no parent scope: nothing to inherit
    }
    const compiler = COMPILERS[child.name];
    if (!compiler) {
      const why = NOT_YET.has(child.name) ? 'is not supported by this gateway yet' : 'is not a policy this gateway knows';
      throw new PolicyLoadError(file, child.line, child.name, `${why} (supported in ${section}: ${supportedIn(section)})`);
    }
    if (!compiler.sections.includes(section)) {
      throw new PolicyLoadError(file, child.line, child.name, `not allowed in the ${section} section (allowed in ${compiler.sections.join(', ')})`);
    }
    result.push(compiler.compile(file, child, section, opts));
  }
  return result;
}

function supportedIn(section: PolicySection): string {
  const names = Object.entries(COMPILERS)
    .filter(([, c]) => c.sections.includes(section))
    .map(([n]) => n);
  return ['base', ...names].join(', ');
}

function compileBase(file: string, element: PolicyElement, seenBefore: boolean): void {
  const r = new ElementReader(file, element);
  r.allowAttributes([]);
  r.noChildren();
  r.noText();
  if (seenBefore) throw r.error('<base /> may appear only once in a section');
}

function compileBackend(file: string, element: PolicyElement): BackendSettings {
  const r = new ElementReader(file, element);
  r.allowAttributes([]);
  r.noText();
  const children = element.children;
  for (const child of children) {
    if (child.name !== 'base' && child.name !== 'forward-request') {
      throw new PolicyLoadError(file, child.line, child.name, 'not supported in the backend section (supported: base, forward-request)');
    }
  }
  if (children.length !== 1) {
    throw r.error('the backend section must contain exactly one <base /> or <forward-request /> (a backend that does not forward is not supported)');
  }
  const only = children[0]!;
  if (only.name === 'base') {
    compileBase(file, only, false);
    return { timeoutMs: DEFAULT_BACKEND_TIMEOUT_MS };
  }
  const f = new ElementReader(file, only);
  f.allowAttributes(['id', 'timeout'], ['timeout-ms', 'follow-redirects', 'buffer-request-body', 'buffer-response', 'fail-on-error-status-code', 'http-version']);
  f.noChildren();
  f.noText();
  return { timeoutMs: f.integer('timeout', DEFAULT_BACKEND_TIMEOUT_MS / 1000, 1, 240 * 60) * 1000 };
}
