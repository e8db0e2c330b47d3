/**
 * `--tenant` given as a domain is turned into the tenant's GUID the way Entra ID publishes it:
 * the issuer of `<authority>/<domain>/v2.0/.well-known/openid-configuration` is
 * `<authority>/<tenant GUID>/v2.0`. The token's `tid` is then compared with that GUID, so a
 * credential signed in to another tenant is refused whichever form `--tenant` took.
 */
import { HttpsTextError, httpsText, printable, quote } from '@certflow/topology';
import { isGuid, type ProvisionOptions } from './options';
import { SignInError } from './credential';

const TIMEOUT_MS = 30_000;
/** Entra's document is about 2 KB. */
const MAX_BYTES = 64 * 1024;

/** The tenant GUID `--tenant` names: itself, or the one its domain's OpenID configuration gives. */
export async function tenantGuid(
  options: Pick<ProvisionOptions, 'tenant' | 'authorityHost' | 'ca'>,
): Promise<string> {
  if (isGuid(options.tenant)) return options.tenant.toLowerCase();
  const url = `${options.authorityHost}/${encodeURIComponent(options.tenant)}/v2.0/.well-known/openid-configuration`;
  const fail = (problem: string) =>
    new SignInError(`--tenant ${options.tenant}: cannot find its tenant id at ${url}: ${problem}`);
  let answer: { status: number; body: string };
  try {
    answer = await fetchText(url, options.ca);
  } catch (err) {
    throw fail((err as Error).message);
  }
  let document: unknown;
  try {
    document = JSON.parse(answer.body);
  } catch {
    document = undefined;
  }
  const field = (name: string): unknown =>
    typeof document === 'object' && document !== null
      ? (document as Record<string, unknown>)[name]
      : undefined;
  if (answer.status !== 200) {
    const description = field('error_description');
    const detail =
      typeof description === 'string' ? `: ${printable(description.split(/\r?\n/)[0]!.slice(0, 300))}` : '';
    throw fail(`HTTP ${answer.status}${detail}`);
  }
  const issuer = field('issuer');
  if (typeof issuer !== 'string') throw fail('the answer has no issuer: not an OpenID configuration');
  const guid = issuerTenant(issuer);
  if (guid === undefined)
    throw fail(`its issuer ${quote(issuer.slice(0, 200))} is not <authority>/<tenant GUID>/v2.0`);
  return guid;
}

/** The GUID of an issuer `https://<host>/<GUID>/v2.0`, or undefined. */
function issuerTenant(issuer: string): string | undefined {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    return undefined;
  }
  const match = /^\/([^/]+)\/v2\.0\/?$/.exec(url.pathname);
  if (url.protocol !== 'https:' || !match || !isGuid(match[1]!)) return undefined;
  return match[1]!.toLowerCase();
}

/** One GET with the extra CA trusted; the whole exchange within TIMEOUT_MS, the body within MAX_BYTES. */
async function fetchText(url: string, ca: string | undefined): Promise<{ status: number; body: string }> {
  try {
    const answer = await httpsText(url, {
      headers: { accept: 'application/json' },
      ...(ca === undefined ? {} : { ca }),
      timeoutMs: TIMEOUT_MS,
      maxBytes: MAX_BYTES,
    });
    return { status: answer.status, body: answer.text };
  } catch (err) {
    if (!(err instanceof HttpsTextError)) throw err;
    if (err.reason === 'network') throw err.cause ?? err;
    throw new Error(
      err.reason === 'too-large'
        ? `the answer is larger than ${MAX_BYTES} bytes`
        : `no complete answer within ${TIMEOUT_MS / 1000} s`,
    );
  }
}
