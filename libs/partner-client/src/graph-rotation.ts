/**
 * What rotation asks Microsoft Graph and Entra ID, as the partner itself (client credentials
 * with its own certificate, through the same token pipeline as every other token; no shared
 * cache, nothing kept after the rotation): addKey, removeKey, the probe that tells whether a
 * certificate is registered, and the lookup of a registered certificate's keyId.
 *
 * `rotateWithGraph` is what the CLI's `cert rotate` and the facade's POST /rotate call.
 */
import { randomUUID } from 'node:crypto';
import type { ParsedCertificate, RsaKeySize } from '@certflow/certs';
import { ApiClient } from './api-client';
import type { CertificateStore, PartnerCredential } from './certificate-store';
import { TokenAcquisitionError } from './certificate-token-client';
import type { RotationConfig } from './config';
import { createTokenPipeline, type TokenPipeline } from './pipeline';
import { rotateCertificate, RotationError, type RotationResult } from './rotation';

export const PROOF_AUDIENCE = '00000002-0000-0000-c000-000000000000';
/** What Entra answers for a client assertion signed by a certificate the application does not have. */
export const NOT_REGISTERED_AADSTS = '700027';

type Signing = Pick<PartnerCredential, 'signer' | 'certificate'>;

/** The proof-of-possession JWT Graph's addKey/removeKey require (RS256, `x5t` = SHA-1 thumbprint), signed by `credential`'s signer. */
export async function createProofOfPossession(
  applicationObjectId: string,
  credential: Signing,
  now = new Date(),
): Promise<string> {
  const nbf = Math.floor(now.getTime() / 1000);
  const header = { alg: 'RS256', typ: 'JWT', x5t: credential.certificate.thumbprints.sha1Base64Url };
  const claims = { aud: PROOF_AUDIENCE, iss: applicationObjectId, nbf, exp: nbf + 600, jti: randomUUID() };
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const signature = await credential.signer.sign('RS256', Buffer.from(input));
  return `${input}.${signature.toString('base64url')}`;
}

function graphMessage(body: unknown): string | undefined {
  const message = (body as { error?: { message?: unknown } } | undefined)?.error?.message;
  return typeof message === 'string' ? message : undefined;
}

const answer = (status: number, body: unknown) =>
  `HTTP ${status}${graphMessage(body) ? `: ${graphMessage(body)}` : ''}`;

/**
 * Whether a key credential Graph lists is this certificate: its `key` (Graph returns it for
 * `$select=keyCredentials` on one application) is the certificate's DER, or its
 * `customKeyIdentifier` holds the SHA-1 thumbprint. That binary property defaults to the
 * thumbprint; Graph serialises it as base64 (of the 20 digest bytes, or of the 40 hex
 * characters when a tool set it so), the emulator as the hex itself: all three are accepted.
 */
export function isKeyCredentialOf(
  credential: { key?: unknown; customKeyIdentifier?: unknown },
  certificate: ParsedCertificate,
): boolean {
  if (typeof credential.key === 'string' && credential.key === certificate.der.toString('base64'))
    return true;
  const id = credential.customKeyIdentifier;
  if (typeof id !== 'string' || id === '') return false;
  const decoded = Buffer.from(id, 'base64');
  return [id, decoded.toString('hex'), decoded.toString('latin1')].some(
    (v) => v.toUpperCase() === certificate.thumbprints.sha1Hex,
  );
}

export type AddKeyOutcome =
  { kind: 'added'; keyId: string } | { kind: 'refused'; status: number; reason?: string };

/** The partner's conversation with Graph and Entra for one rotation. */
export class PartnerGraph {
  private readonly sessions = new Map<string, { pipeline: TokenPipeline; graph: ApiClient }>();

  constructor(
    private readonly config: RotationConfig,
    private readonly log: (message: string) => void,
  ) {}

  private get objectId(): string {
    return this.config.applicationObjectId;
  }

  private pipelineFor(credential: PartnerCredential): TokenPipeline {
    return createTokenPipeline({
      config: { ...this.config, scope: this.config.graphScope, sharedCache: undefined },
      credential,
      log: this.log,
    });
  }

  /** Graph with the partner's own token, obtained with `credential`. */
  private graph(credential: PartnerCredential): ApiClient {
    const key = credential.certificate.thumbprints.sha256Hex;
    let session = this.sessions.get(key);
    if (!session) {
      const pipeline = this.pipelineFor(credential);
      const graph = new ApiClient({
        baseUrl: this.config.graphUrl,
        tokens: pipeline.tokens,
        ...(this.config.caPem ? { ca: this.config.caPem } : {}),
      });
      session = { pipeline, graph };
      this.sessions.set(key, session);
    }
    return session.graph;
  }

  /**
   * The partner's Graph token, obtained with `credential` and kept for addKey: a rotation asks for
   * it before it records or writes anything, so a certificate Entra does not accept stops it with
   * nothing changed (AADSTS700027: not registered for this application, said in plain words).
   */
  async signIn(credential: PartnerCredential): Promise<void> {
    this.graph(credential);
    const { pipeline } = this.sessions.get(credential.certificate.thumbprints.sha256Hex)!;
    try {
      await pipeline.tokens.getToken();
    } catch (err) {
      const sha1 = credential.certificate.thumbprints.sha1Hex;
      if (err instanceof TokenAcquisitionError && err.aadsts === NOT_REGISTERED_AADSTS)
        throw new RotationError(
          `the current certificate ${sha1} is not registered for the application ${this.config.clientId} (AADSTS${NOT_REGISTERED_AADSTS}), so it cannot prove the partner's identity to register the next one; nothing was changed: ask the API owner to upload it (or use "cert import" with a certificate that is registered)`,
        );
      throw new RotationError(
        `a Graph token with the current certificate ${sha1} could not be obtained (${(err as Error).message}); nothing was changed: run "cert rotate" again`,
      );
    }
  }

  /** addKey of `next`, with the proof signed by `current` (registered) and Graph reached as `current`. */
  async addKey(
    current: PartnerCredential,
    next: ParsedCertificate,
    displayName: string,
  ): Promise<AddKeyOutcome> {
    const added = await this.graph(current).request(
      `/applications/${encodeURIComponent(this.objectId)}/addKey`,
      {
        method: 'POST',
        body: {
          keyCredential: {
            type: 'AsymmetricX509Cert',
            usage: 'Verify',
            key: next.der.toString('base64'),
            displayName,
          },
          passwordCredential: null,
          proof: await createProofOfPossession(this.objectId, current),
        },
      },
    );
    if (added.status === 401 || added.status === 403) {
      const reason = graphMessage(added.body);
      return { kind: 'refused', status: added.status, ...(reason ? { reason } : {}) };
    }
    if (added.status < 200 || added.status >= 300)
      throw new RotationError(`addKey failed: ${answer(added.status, added.body)}`);
    const keyId = (added.body as { keyId?: unknown }).keyId;
    if (typeof keyId !== 'string') throw new RotationError('addKey answered without a keyId');
    return { kind: 'added', keyId: keyId.toLowerCase() };
  }

  /**
   * removeKey of `keyId`, the proof signed by `by` (the new certificate). `gone` when Graph says
   * there is no such key credential (a removal done before a crash): the caller confirms it.
   */
  async removeKey(keyId: string, by: PartnerCredential): Promise<'removed' | 'gone'> {
    const removed = await this.graph(by).request(
      `/applications/${encodeURIComponent(this.objectId)}/removeKey`,
      {
        method: 'POST',
        body: { keyId, proof: await createProofOfPossession(this.objectId, by) },
      },
    );
    if (removed.status >= 200 && removed.status < 300) return 'removed';
    if (
      removed.status === 404 ||
      (removed.status === 400 && /keyId|credential/i.test(graphMessage(removed.body) ?? ''))
    )
      return 'gone';
    throw new RotationError(`removeKey ${keyId} failed: ${answer(removed.status, removed.body)}`);
  }

  /**
   * Does Entra accept `credential`'s certificate? A token request signed with it, past every
   * cache (a pipeline of its own, no shared tier): a token means registered, AADSTS700027 means
   * not registered; anything else (network, 5xx, another refusal) cannot tell, and throws.
   */
  async isRegistered(credential: PartnerCredential): Promise<boolean> {
    const pipeline = this.pipelineFor(credential);
    try {
      await pipeline.tokens.getToken();
      return true;
    } catch (err) {
      if (err instanceof TokenAcquisitionError && err.aadsts === NOT_REGISTERED_AADSTS) return false;
      throw new RotationError(
        `cannot tell whether the certificate ${credential.certificate.thumbprints.sha1Hex} is registered (a token request with it failed: ${(err as Error).message}); nothing was changed: run "cert rotate" again`,
      );
    } finally {
      pipeline.close();
    }
  }

  /**
   * The keyId of a registered certificate, read from the application's keyCredentials
   * (`GET /applications/{objectId}?$select=keyCredentials`) with the partner's own Graph token.
   * That needs a permission to read its own registration (Application.Read.All, or
   * Application.ReadWrite.OwnedBy with the application among its own owners); without one Graph
   * answers 403 and this resolves undefined; null when the certificate is not registered.
   */
  async keyIdOf(certificate: ParsedCertificate, as: PartnerCredential): Promise<string | null | undefined> {
    const app = await this.graph(as).request(
      `/applications/${encodeURIComponent(this.objectId)}?$select=keyCredentials`,
    );
    if (app.status === 403) return undefined;
    if (app.status < 200 || app.status >= 300)
      throw new RotationError(
        `reading the application's keyCredentials failed: ${answer(app.status, app.body)}`,
      );
    const credentials = (app.body as { keyCredentials?: unknown }).keyCredentials;
    const found = (Array.isArray(credentials) ? credentials : []).find(
      (c: unknown) => typeof c === 'object' && c !== null && isKeyCredentialOf(c, certificate),
    ) as { keyId?: unknown } | undefined;
    return typeof found?.keyId === 'string' ? found.keyId.toLowerCase() : null;
  }

  close(): void {
    for (const { graph, pipeline } of this.sessions.values()) {
      graph.close();
      pipeline.close();
    }
    this.sessions.clear();
  }
}

export interface GraphRotationOptions {
  days?: number;
  commonName?: string;
  oldKeyId?: string;
  keySize?: RsaKeySize;
  graceMs?: number;
  onSwitch?: (next: PartnerCredential) => void;
  log: (message: string) => void;
}

export async function rotateWithGraph(
  config: RotationConfig,
  store: CertificateStore,
  current: PartnerCredential | undefined,
  options: GraphRotationOptions,
): Promise<RotationResult> {
  const graph = new PartnerGraph(config, options.log);
  try {
    return await rotateCertificate({ ...options, config, store, current, graph });
  } finally {
    graph.close();
  }
}
