/**
 * An APIM policy document (global, API or operation scope):
 *
 *   <policies>
 *     <inbound> <base /> … </inbound>
 *     <backend> <base /> | <forward-request /> </backend>
 *     <outbound> <base /> … </outbound>
 *     <on-error> <base /> … </on-error>
 *   </policies>
 *
 * Scopes nest global → API → operation (no product scope). `<base />` inserts the parent
 * scope's statements of the same section where it stands; at the outermost scope it inherits
 * nothing, and in backend it stands for the parent's backend or the global default,
 * `<forward-request />`. Every element and attribute is checked when the file is loaded;
 * anything this gateway does not implement is a load error naming file, line and element.
 */
import { readFileSync } from 'node:fs';
import type { OpenIdMetadataCache } from './openid-metadata-cache';
import type { PolicySection, PolicyStatement } from './policy-context';
import { ElementReader, parsePolicyXml, PolicyElement, PolicyLoadError } from './policy-xml';
import { compileCheckHeader, compileIpFilter, compileSetBackendService } from './access-policies';
import { compileRateLimitByKey } from './rate-limit-policy';
import { MemoryRateLimitStore, RateLimitStore, RateLimitStoreUnavailable } from './rate-limit-store';
import { compileReturnResponse } from './return-response-policy';
import { compileSetHeader } from './set-header-policy';
import { compileValidateAzureAdToken } from './validate-azure-ad-token-policy';
import { compileValidateClientCertificate } from './validate-client-certificate-policy';
import { compileValidateJwt } from './validate-jwt-policy';

export interface BackendSettings {
  /** forward-request `timeout`; undefined when the policy sets none (the gateway's `upstreamTimeoutMs` applies). */
  timeoutMs?: number;
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
  /** Entra ID instance for validate-azure-ad-token; default https://login.microsoftonline.com. */
  entraInstance?: string;
  /** Verified tokens remembered per validate-jwt / validate-azure-ad-token instance (default 10,000; 0 = off). */
  verifiedTokenCacheSize?: number;
  /** Counters for rate-limit-by-key; default: a new in-memory store for this document. */
  rateLimitStore?: RateLimitStore;
  /** Told when the counter store fails and a request is let through (fail-open). */
  onRateLimitStoreUnavailable?(err: RateLimitStoreUnavailable): void;
}

const cacheSize = (opts: PolicyLoadOptions): { verifiedTokenCacheSize?: number } =>
  opts.verifiedTokenCacheSize === undefined ? {} : { verifiedTokenCacheSize: opts.verifiedTokenCacheSize };

type Compiler = (
  file: string,
  element: PolicyElement,
  section: PolicySection,
  opts: PolicyLoadOptions,
) => PolicyStatement;

const COMPILERS: Record<string, { sections: PolicySection[]; compile: Compiler }> = {
  'validate-jwt': {
    sections: ['inbound'],
    compile: (file, el, _s, opts) =>
      compileValidateJwt(el, { file, metadataCache: opts.metadataCache, ...cacheSize(opts) }),
  },
  'set-header': {
    sections: ['inbound', 'outbound', 'on-error'],
    compile: (file, el, section) => compileSetHeader(file, el, section),
  },
  'rate-limit-by-key': {
    sections: ['inbound'],
    compile: (file, el, _s, opts) =>
      compileRateLimitByKey(el, {
        file,
        store: opts.rateLimitStore!,
        onStoreUnavailable: opts.onRateLimitStoreUnavailable ?? (() => undefined),
      }),
  },
  'validate-client-certificate': {
    sections: ['inbound'],
    compile: (file, el) => compileValidateClientCertificate(file, el),
  },
  'validate-azure-ad-token': {
    sections: ['inbound'],
    compile: (file, el, _s, opts) =>
      compileValidateAzureAdToken(el, {
        file,
        metadataCache: opts.metadataCache,
        ...cacheSize(opts),
        entraInstance: opts.entraInstance ?? 'https://login.microsoftonline.com',
      }),
  },
  'check-header': { sections: ['inbound'], compile: (file, el) => compileCheckHeader(file, el) },
  'ip-filter': { sections: ['inbound'], compile: (file, el) => compileIpFilter(file, el) },
  'set-backend-service': { sections: ['inbound'], compile: (file, el) => compileSetBackendService(file, el) },
  'return-response': {
    sections: ['inbound', 'outbound', 'on-error'],
    compile: (file, el) => compileReturnResponse(file, el),
  },
};

/** APIM policies a later version of this gateway is expected to support: refused with a clearer message. */
const NOT_YET = new Set([
  'rate-limit',
  'quota',
  'quota-by-key',
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

const SECTIONS: Record<string, PolicySection> = {
  inbound: 'inbound',
  backend: 'backend',
  outbound: 'outbound',
  'on-error': 'on-error',
};

export function loadPolicyDocument(
  file: string,
  opts: PolicyLoadOptions,
  parent?: PolicyDocument,
): PolicyDocument {
  let xml: string;
  try {
    xml = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PolicyLoadError(
      file,
      undefined,
      undefined,
      `cannot read policy file: ${(err as Error).message}`,
    );
  }
  return compilePolicyDocument(xml, file, opts, parent);
}

/**
 * Compiles one scope's policy file. `parent` is the enclosing scope (global for an API, the API
 * for an operation): `<base />` in a section inserts the parent's statements of that section at
 * that point; a section without `<base />` (or a missing section) does not inherit.
 */
export function compilePolicyDocument(
  xml: string,
  file: string,
  loadOpts: PolicyLoadOptions,
  parent?: PolicyDocument,
): PolicyDocument {
  const opts: PolicyLoadOptions = {
    ...loadOpts,
    rateLimitStore: loadOpts.rateLimitStore ?? new MemoryRateLimitStore(),
  };
  const root = parsePolicyXml(xml, { file, namedValues: opts.namedValues });
  const r = new ElementReader(file, root);
  if (root.name !== 'policies') throw r.error('the root element must be <policies>');
  r.allowAttributes([]);
  r.noText();
  r.allowChildren(Object.keys(SECTIONS), [], Object.keys(SECTIONS));

  const statements = (name: string): PolicyStatement[] => {
    const section = r.children(name)[0];
    const inherited = parent
      ? name === 'inbound'
        ? parent.inbound
        : name === 'outbound'
          ? parent.outbound
          : parent.onError
      : [];
    return section ? compileSection(file, section, SECTIONS[name]!, opts, inherited) : [];
  };
  const backendElement = r.children('backend')[0];
  return {
    file,
    inbound: statements('inbound'),
    backend: backendElement ? compileBackend(file, backendElement, parent?.backend) : {},
    outbound: statements('outbound'),
    onError: statements('on-error'),
  };
}

function compileSection(
  file: string,
  element: PolicyElement,
  section: PolicySection,
  opts: PolicyLoadOptions,
  inherited: readonly PolicyStatement[],
): PolicyStatement[] {
  const r = new ElementReader(file, element);
  r.allowAttributes([]);
  r.noText();
  const result: PolicyStatement[] = [];
  let sawBase = false;
  for (const child of element.children) {
    if (child.name === 'base') {
      compileBase(file, child, sawBase);
      sawBase = true;
      result.push(...inherited); // the parent scope's statements, here
      continue;
    }
    const compiler = COMPILERS[child.name];
    if (!compiler) {
      const why = NOT_YET.has(child.name)
        ? 'is not supported by this gateway yet'
        : 'is not a policy this gateway knows';
      throw new PolicyLoadError(
        file,
        child.line,
        child.name,
        `${why} (supported in ${section}: ${supportedIn(section)})`,
      );
    }
    if (!compiler.sections.includes(section)) {
      throw new PolicyLoadError(
        file,
        child.line,
        child.name,
        `not allowed in the ${section} section (allowed in ${compiler.sections.join(', ')})`,
      );
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

function compileBackend(
  file: string,
  element: PolicyElement,
  inherited: BackendSettings | undefined,
): BackendSettings {
  const r = new ElementReader(file, element);
  r.allowAttributes([]);
  r.noText();
  const children = element.children;
  for (const child of children) {
    if (child.name !== 'base' && child.name !== 'forward-request') {
      throw new PolicyLoadError(
        file,
        child.line,
        child.name,
        'not supported in the backend section (supported: base, forward-request)',
      );
    }
  }
  if (children.length !== 1) {
    throw r.error(
      'the backend section must contain exactly one <base /> or <forward-request /> (a backend that does not forward is not supported)',
    );
  }
  const only = children[0]!;
  if (only.name === 'base') {
    compileBase(file, only, false);
    return inherited ?? {};
  }
  const f = new ElementReader(file, only);
  f.allowAttributes(
    ['id', 'timeout'],
    [
      'timeout-ms',
      'follow-redirects',
      'buffer-request-body',
      'buffer-response',
      'fail-on-error-status-code',
      'http-version',
    ],
  );
  f.noChildren();
  f.noText();
  if (f.optional('timeout') === undefined) return {};
  return { timeoutMs: f.integer('timeout', 0, 1, 240 * 60) * 1000 };
}
