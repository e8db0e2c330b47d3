/**
 * Reading a tenant's OpenID Connect metadata document over HTTPS: its `issuer` and `jwks_uri`
 * are what the validator trusts, so nothing about a cloud (public, sovereign, an emulator) is
 * built by hand.
 *
 * @example
 *   const { issuer, jwksUri } = await fetchOpenIdMetadata(url, { agent, timeoutMs: 10_000 });
 */
import { Agent, get } from 'node:https';

export interface OpenIdMetadata {
  issuer: string;
  jwksUri: string;
}

/** The metadata URL could not be read or did not hold a usable document. */
export class OpenIdMetadataError extends Error {
  override readonly name = 'OpenIdMetadataError';

  constructor(
    readonly url: string,
    message: string,
    /** The HTTP status, when the server answered. */
    readonly status?: number,
  ) {
    super(message);
  }

  /** 400 or 404: the tenant does not exist at this authority (a configuration error, not an outage). */
  get isConfigurationError(): boolean {
    return this.status === 400 || this.status === 404;
  }
}

/** Metadata documents are a few kilobytes; anything much larger is refused. */
const MAX_DOCUMENT_BYTES = 256 * 1024;

export async function fetchOpenIdMetadata(
  url: string,
  options: { agent: Agent | undefined; timeoutMs: number },
): Promise<OpenIdMetadata> {
  const document = await getJson(url, options);
  const issuer = document['issuer'];
  const jwksUri = document['jwks_uri'];
  if (typeof issuer !== 'string' || issuer.length === 0)
    throw new OpenIdMetadataError(url, 'metadata document has no issuer');
  if (typeof jwksUri !== 'string' || !jwksUri.startsWith('https://'))
    throw new OpenIdMetadataError(url, 'metadata document has no https:// jwks_uri');
  return { issuer, jwksUri };
}

function getJson(
  url: string,
  { agent, timeoutMs }: { agent: Agent | undefined; timeoutMs: number },
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const request = get(url, { ...(agent ? { agent } : {}), timeout: timeoutMs }, (response) => {
      const status = response.statusCode ?? 0;
      if (status !== 200) {
        response.resume();
        const hint =
          status === 400 || status === 404
            ? ': the tenant does not exist at this instance (check the tenant id and the instance URL)'
            : '';
        return reject(new OpenIdMetadataError(url, `metadata answered HTTP ${status}${hint}`, status));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_DOCUMENT_BYTES) {
          response.destroy();
          reject(new OpenIdMetadataError(url, `metadata document larger than ${MAX_DOCUMENT_BYTES} bytes`));
        } else chunks.push(chunk);
      });
      response.on('error', (err) => reject(new OpenIdMetadataError(url, err.message)));
      response.on('end', () => {
        try {
          const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          if (typeof value !== 'object' || value === null || Array.isArray(value))
            throw new Error('not a JSON object');
          resolve(value as Record<string, unknown>);
        } catch (err) {
          reject(new OpenIdMetadataError(url, `metadata is not a JSON object (${(err as Error).message})`));
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on('error', (err) => reject(new OpenIdMetadataError(url, err.message)));
  });
}
