/**
 * A client for the emulator's Graph-shaped API. It obtains an admin token with the client
 * secret from emulator.json and trusts the development CA explicitly (an `ca` option on its
 * own agent), never through process-wide settings.
 *
 * @example
 *   const graph = await GraphClient.connect(readEmulatorInfo('.certflow'));
 *   const app = await graph.createApplication({ displayName: 'contoso-partner' });
 *   await graph.addCertificate(app.id, readFileSync('partner.cer'), 'contoso 2025');
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { randomUUID } from 'node:crypto';
import { importPKCS8, SignJWT } from 'jose';
import { parseCertificate, type CertificateAndKey } from '@certflow/certs';
import { GRAPH_RESOURCE } from './directory';
import type { EmulatorInfo } from './emulator-info';
import type { FaultSettings } from './faults';
import type { TestTokenOptions } from './test-tokens';

export interface GraphAppRole {
  id: string;
  value: string;
  displayName: string;
  description: string;
  allowedMemberTypes: string[];
  isEnabled: boolean;
  origin?: string;
}

export interface GraphKeyCredential {
  keyId: string;
  type: string;
  usage: string;
  displayName: string | null;
  customKeyIdentifier: string | null;
  startDateTime: string;
  endDateTime: string;
  /** base64 DER; Graph returns it only with `$select=keyCredentials` on a single application. */
  key: string | null;
}

export interface GraphPasswordCredential {
  keyId: string;
  displayName: string | null;
  hint: string;
  startDateTime: string;
  endDateTime: string;
  /** Present only in the response to addPassword. */
  secretText: string | null;
}

export interface GraphApplication {
  id: string;
  appId: string;
  displayName: string;
  description: string | null;
  signInAudience: string;
  identifierUris: string[];
  appRoles: GraphAppRole[];
  keyCredentials: GraphKeyCredential[];
  passwordCredentials: GraphPasswordCredential[];
  api: { requestedAccessTokenVersion: number | null };
  tags: string[];
  createdDateTime: string;
}

export interface ApplicationInput {
  displayName?: string;
  description?: string | null;
  signInAudience?: string;
  identifierUris?: string[];
  appRoles?: Omit<GraphAppRole, 'origin'>[];
  keyCredentials?: Partial<GraphKeyCredential>[];
  passwordCredentials?: { keyId: string }[];
  api?: { requestedAccessTokenVersion?: number | null };
  tags?: string[];
}

export interface GraphServicePrincipal {
  id: string;
  appId: string;
  displayName: string;
  servicePrincipalNames: string[];
  appRoles: GraphAppRole[];
}

export interface GraphAppRoleAssignment {
  id: string;
  appRoleId: string;
  principalId: string;
  principalDisplayName: string | null;
  resourceId: string;
  resourceDisplayName: string | null;
  createdDateTime: string;
}

/** A Graph call that failed; `code` is Graph's error code (e.g. `Request_BadRequest`). */
export class GraphRequestError extends Error {
  override readonly name = 'GraphRequestError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface HttpResult {
  status: number;
  text: string;
}

/** Renew the admin token this long before it expires. */
const RENEW_BEFORE_MS = 5 * 60_000;

/** Where a GraphClient gets its bearer token from. */
export type GraphCredentials =
  | { kind: 'admin' }
  | { kind: 'certificate'; clientId: string; certificate: CertificateAndKey }
  | { kind: 'token'; getToken: () => string | Promise<string> };

/** A service principal's assignments: the roles it holds (`appRoleAssignments`) or the grants of its roles (`appRoleAssignedTo`). */
const assignmentsPath = (spId: string, view: 'appRoleAssignments' | 'appRoleAssignedTo') =>
  `/servicePrincipals/${encodeURIComponent(spId)}/${view}`;

export class GraphClient {
  private token: { value: string; expiresAt: number } | undefined;

  private constructor(
    readonly info: EmulatorInfo,
    private readonly agent: Agent,
    private readonly credentials: GraphCredentials = { kind: 'admin' },
  ) {}

  /** As the emulator's admin (client secret from emulator.json; Application.ReadWrite.All, AppRoleAssignment.ReadWrite.All and AuditLog.Read.All). */
  static async connect(info: EmulatorInfo): Promise<GraphClient> {
    const client = new GraphClient(info, GraphClient.agentFor(info));
    await client.accessToken();
    return client;
  }

  /**
   * As an application itself, with a Graph token it gets by client credentials with its own
   * certificate (PS256 + x5t#S256 assertion). Such a token carries no Graph permission, which is
   * all `addKey`/`removeKey` on the application's own registration need.
   */
  static async connectWithCertificate(
    info: EmulatorInfo,
    clientId: string,
    certificate: CertificateAndKey,
  ): Promise<GraphClient> {
    const client = new GraphClient(info, GraphClient.agentFor(info), {
      kind: 'certificate',
      clientId,
      certificate,
    });
    await client.accessToken();
    return client;
  }

  /** With bearer tokens from elsewhere (e.g. MSAL with scope `https://graph.microsoft.com/.default`); called before each request. */
  static withAccessToken(info: EmulatorInfo, getToken: () => string | Promise<string>): GraphClient {
    return new GraphClient(info, GraphClient.agentFor(info), { kind: 'token', getToken });
  }

  private static agentFor(info: EmulatorInfo): Agent {
    return new Agent({ ca: readFileSync(info.caCertificatePath), keepAlive: true });
  }

  /** The Graph access token this client sends (cached; renewed when it nears expiry). */
  async accessToken(): Promise<string> {
    if (this.credentials.kind === 'token') return this.credentials.getToken();
    if (this.token && this.token.expiresAt - Date.now() > RENEW_BEFORE_MS) return this.token.value;
    const fields: Record<string, string> =
      this.credentials.kind === 'admin'
        ? { client_id: this.info.admin.clientId, client_secret: this.info.admin.clientSecret }
        : {
            client_id: this.credentials.clientId,
            client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
            client_assertion: await certificateClientAssertion(
              this.info.tokenEndpoint,
              this.credentials.clientId,
              this.credentials.certificate,
            ),
          };
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      ...fields,
      scope: `${GRAPH_RESOURCE}/.default`,
    }).toString();
    const res = await this.send(
      'POST',
      this.info.tokenEndpoint,
      { 'content-type': 'application/x-www-form-urlencoded' },
      form,
    );
    const body = parseJson(res.text) as
      | { access_token?: unknown; expires_in?: unknown; error?: unknown; error_description?: unknown }
      | undefined;
    if (res.status !== 200 || typeof body?.access_token !== 'string' || body.access_token === '') {
      const why =
        typeof body?.error_description === 'string'
          ? body.error_description.split('\r\n')[0]
          : `HTTP ${res.status}`;
      const who = this.credentials.kind === 'admin' ? 'an admin token' : 'a Graph token';
      throw new GraphRequestError(
        res.status,
        String(body?.error ?? 'token_request_failed'),
        `could not get ${who} from the emulator: ${why}`,
      );
    }
    const lifetime = typeof body.expires_in === 'number' ? body.expires_in : 3600;
    this.token = { value: body.access_token, expiresAt: Date.now() + lifetime * 1000 };
    return this.token.value;
  }

  async createApplication(input: ApplicationInput): Promise<GraphApplication> {
    return (await this.call('POST', '/applications', input)) as GraphApplication;
  }

  async getApplication(objectId: string, options: { select?: string[] } = {}): Promise<GraphApplication> {
    const query = options.select ? `?$select=${options.select.map(encodeURIComponent).join(',')}` : '';
    return (await this.call(
      'GET',
      `/applications/${encodeURIComponent(objectId)}${query}`,
    )) as GraphApplication;
  }

  async updateApplication(objectId: string, patch: ApplicationInput): Promise<void> {
    await this.call('PATCH', `/applications/${encodeURIComponent(objectId)}`, patch);
  }

  async listApplications(): Promise<GraphApplication[]> {
    return ((await this.call('GET', '/applications')) as { value: GraphApplication[] }).value;
  }

  async addPassword(objectId: string, displayName?: string): Promise<GraphPasswordCredential> {
    const body = { passwordCredential: displayName === undefined ? {} : { displayName } };
    return (await this.call(
      'POST',
      `/applications/${encodeURIComponent(objectId)}/addPassword`,
      body,
    )) as GraphPasswordCredential;
  }

  async removePassword(objectId: string, keyId: string): Promise<void> {
    await this.call('POST', `/applications/${encodeURIComponent(objectId)}/removePassword`, { keyId });
  }

  async createServicePrincipal(appId: string): Promise<GraphServicePrincipal> {
    return (await this.call('POST', '/servicePrincipals', { appId })) as GraphServicePrincipal;
  }

  async findServicePrincipalByAppId(appId: string): Promise<GraphServicePrincipal | undefined> {
    const filter = encodeURIComponent(`appId eq '${appId.replace(/'/g, "''")}'`);
    const found = (await this.call('GET', `/servicePrincipals?$filter=${filter}`)) as {
      value: GraphServicePrincipal[];
    };
    return found.value[0];
  }

  async assignAppRole(assignment: {
    principalId: string;
    resourceId: string;
    appRoleId: string;
  }): Promise<GraphAppRoleAssignment> {
    return (await this.call(
      'POST',
      assignmentsPath(assignment.resourceId, 'appRoleAssignedTo'),
      assignment,
    )) as GraphAppRoleAssignment;
  }

  /** The roles granted to the service principal (Graph's client view, `appRoleAssignments`). */
  async listAppRoleAssignments(principalId: string): Promise<GraphAppRoleAssignment[]> {
    const path = assignmentsPath(principalId, 'appRoleAssignments');
    return ((await this.call('GET', path)) as { value: GraphAppRoleAssignment[] }).value;
  }

  /** The grants of the resource's roles (Graph's resource view, `appRoleAssignedTo`). */
  async listAppRoleAssignedTo(resourceId: string): Promise<GraphAppRoleAssignment[]> {
    const path = assignmentsPath(resourceId, 'appRoleAssignedTo');
    return ((await this.call('GET', path)) as { value: GraphAppRoleAssignment[] }).value;
  }

  /** Revokes an assignment through its resource (`DELETE …/appRoleAssignedTo/{id}`). */
  async removeAppRoleAssignment(assignment: { id: string; resourceId: string }): Promise<void> {
    await this.call(
      'DELETE',
      `${assignmentsPath(assignment.resourceId, 'appRoleAssignedTo')}/${encodeURIComponent(assignment.id)}`,
    );
  }

  /** Deletes an application with its service principal and that principal's assignments. */
  async deleteApplication(objectId: string): Promise<void> {
    await this.call('DELETE', `/applications/${encodeURIComponent(objectId)}`);
  }

  /**
   * Registers a certificate (DER `.cer` or PEM) on an application, keeping the ones already
   * there: PATCH replaces the whole `keyCredentials` collection, so the existing items are
   * read (with their keys) and sent back together with the new one.
   */
  async addCertificate(
    applicationObjectId: string,
    cerDerOrPem: Uint8Array | string,
    displayName?: string,
  ): Promise<GraphKeyCredential> {
    const certificate = parseCertificate(cerDerOrPem);
    const existing = await this.keyCredentialsToKeep(applicationObjectId, () => true);
    const added = {
      type: 'AsymmetricX509Cert',
      usage: 'Verify',
      key: certificate.der.toString('base64'),
      displayName: displayName ?? certificate.subject,
    };
    await this.updateApplication(applicationObjectId, { keyCredentials: [...existing, added] });
    const after = await this.getApplication(applicationObjectId);
    const registered = after.keyCredentials.find(
      (k) =>
        k.customKeyIdentifier === certificate.thumbprints.sha1Hex &&
        !existing.some((e) => e.keyId === k.keyId),
    );
    if (!registered)
      throw new GraphRequestError(
        500,
        'Unexpected',
        'the certificate was not found on the application after the update',
      );
    return registered;
  }

  /**
   * Takes certificates off an application by keyId, as the API owner does: PATCH with every
   * other item sent back. Resolves with how many were removed (none: nothing is sent).
   */
  async removeCertificates(applicationObjectId: string, keyIds: Iterable<string>): Promise<number> {
    const removed = new Set([...keyIds].map((k) => k.toLowerCase()));
    let count = 0;
    const kept = await this.keyCredentialsToKeep(applicationObjectId, (k) => {
      const keep = !removed.has(k.keyId.toLowerCase());
      if (!keep) count++;
      return keep;
    });
    if (count > 0) await this.updateApplication(applicationObjectId, { keyCredentials: kept });
    return count;
  }

  /** The application's key credentials (with their keys) that `keep` accepts, in the form PATCH takes back. */
  private async keyCredentialsToKeep(
    applicationObjectId: string,
    keep: (credential: GraphKeyCredential) => boolean,
  ): Promise<Partial<GraphKeyCredential>[]> {
    const current = await this.getApplication(applicationObjectId, { select: ['id', 'keyCredentials'] });
    return current.keyCredentials.filter(keep).map((k) => ({
      keyId: k.keyId,
      type: k.type,
      usage: k.usage,
      key: k.key,
      displayName: k.displayName,
      customKeyIdentifier: k.customKeyIdentifier,
    }));
  }

  /**
   * Rotates the emulator's token-signing key through the admin API (`POST /admin/signingKeys/rotate`):
   * the published next key starts signing; resolves with its `kid`.
   */
  async rotateSigningKey(): Promise<{ kid: string }> {
    const body = (await this.call('POST', '/signingKeys/rotate', undefined, this.adminUrl())) as {
      kid: string;
    };
    return { kid: body.kid };
  }

  /**
   * Changes the faults injected into the emulator's token endpoints (`PATCH /admin/faults`):
   * the given fields are merged into the current settings; `NO_FAULTS` turns everything off.
   * For an emulator in another process; in-process, `RunningEmulator.setFaults` does the same.
   */
  async setFaults(faults: Partial<FaultSettings>): Promise<FaultSettings> {
    return (await this.call('PATCH', '/faults', faults, this.adminUrl())) as FaultSettings;
  }

  /**
   * Moves the clock of an emulator in another process: `{ offset }` or `{ offsetMs }` sets it
   * (`PUT /admin/clock`), `{ by }` advances it (`POST /admin/clock/advance`); in-process,
   * `RunningEmulator.clock` does the same.
   */
  async setClock(
    change: { offset: string } | { offsetMs: number } | { by: string },
  ): Promise<{ now: string; offsetMs: number; offset: string }> {
    const [method, path] = 'by' in change ? ['POST', '/clock/advance'] : ['PUT', '/clock'];
    return (await this.call(method, path, change, this.adminUrl())) as {
      now: string;
      offsetMs: number;
      offset: string;
    };
  }

  /**
   * Mints a test token (`POST /admin/testTokens`, see test-tokens.ts): signed with the emulator's
   * real keys, marked `certflow_test: true`, recorded in the sign-in log as minted.
   */
  async mintTestToken(options: TestTokenOptions): Promise<string> {
    const body = (await this.call('POST', '/testTokens', options, this.adminUrl())) as {
      accessToken?: unknown;
    };
    if (typeof body?.accessToken !== 'string')
      throw new GraphRequestError(200, 'HTTP_200', 'POST /testTokens answered without an accessToken');
    return body.accessToken;
  }

  private adminUrl(): string {
    return `${this.info.url}/admin`;
  }

  /**
   * Graph's `addKey`: registers one more certificate (DER `.cer` or PEM) on an application,
   * authorized by `proof` (see `createProofOfPossession`), signed with a certificate already
   * registered and valid. Works with the application's own token; answers the new keyCredential.
   */
  async addKey(
    applicationObjectId: string,
    cerDerOrPem: Uint8Array | string,
    proof: string,
    displayName?: string,
  ): Promise<GraphKeyCredential> {
    const certificate = parseCertificate(cerDerOrPem);
    const body = {
      keyCredential: {
        type: 'AsymmetricX509Cert',
        usage: 'Verify',
        key: certificate.der.toString('base64'),
        displayName: displayName ?? certificate.subject,
      },
      passwordCredential: null,
      proof,
    };
    const { '@odata.context': _context, ...credential } = (await this.call(
      'POST',
      `/applications/${encodeURIComponent(applicationObjectId)}/addKey`,
      body,
    )) as GraphKeyCredential & {
      '@odata.context'?: string;
    };
    return credential;
  }

  /** Graph's `removeKey`: the certificate with this `keyId` stops authenticating at once. */
  async removeKey(applicationObjectId: string, keyId: string, proof: string): Promise<void> {
    await this.call('POST', `/applications/${encodeURIComponent(applicationObjectId)}/removeKey`, {
      keyId,
      proof,
    });
  }

  /** Closes kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  private async call(
    method: string,
    path: string,
    body?: unknown,
    baseUrl = this.info.graphUrl,
    retried = false,
  ): Promise<unknown> {
    const token = await this.accessToken();
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' };
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload !== undefined) headers['content-type'] = 'application/json';
    const res = await this.send(method, `${baseUrl}${path}`, headers, payload);
    // The emulator's clock may have moved past the kept token's exp (/admin/clock): one new token.
    if (res.status === 401 && !retried && this.credentials.kind !== 'token') {
      this.token = undefined;
      return this.call(method, path, body, baseUrl, true);
    }
    const parsed = res.text === '' ? undefined : parseJson(res.text);
    if (res.status >= 200 && res.status < 300) return parsed;
    const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    throw new GraphRequestError(
      res.status,
      typeof error?.code === 'string' ? error.code : `HTTP_${res.status}`,
      `${method} ${path.split('?')[0]} failed with HTTP ${res.status}: ${typeof error?.message === 'string' ? error.message : res.text.slice(0, 200)}`,
    );
  }

  private send(
    method: string,
    url: string,
    headers: Record<string, string>,
    body?: string,
  ): Promise<HttpResult> {
    return new Promise((resolve, reject) => {
      const req = request(url, { method, agent: this.agent, headers, timeout: 30_000 }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
      req.on('error', reject);
      req.end(body);
    });
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A client assertion as MSAL builds it with `thumbprintSha256`: PS256, `x5t#S256`, 10 minutes. */
export async function certificateClientAssertion(
  tokenEndpoint: string,
  clientId: string,
  certificate: CertificateAndKey,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    aud: tokenEndpoint,
    iss: clientId,
    sub: clientId,
    jti: randomUUID(),
    nbf: now,
    iat: now,
    exp: now + 600,
  })
    .setProtectedHeader({
      alg: 'PS256',
      typ: 'JWT',
      'x5t#S256': parseCertificate(certificate.certificatePem).thumbprints.sha256Base64Url,
    })
    .sign(await importPKCS8(certificate.privateKeyPem, 'PS256'));
}
