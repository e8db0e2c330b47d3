/** Graph calls for the emulator's specs: raw HTTPS with a chosen token, Graph's error shape, clients with chosen roles. */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect } from 'vitest';
import { createSelfSignedCertificate, type CertificateAndKey } from '@certflow/certs';
import { GRAPH_APP_ID, GRAPH_ROLE_IDS, type GraphRoleValue } from './directory';
import {
  assertionForm,
  clientAssertion,
  decodeJwt,
  https,
  postForm,
  startFixture,
  type Fixture,
  type HttpResult,
} from './emulator.test-helpers';

/** `body` is sent as JSON (a string as it is); `token` null sends no Authorization header. */
export type GraphCall = (
  method: string,
  path: string,
  body?: unknown,
  token?: string | null,
) => Promise<HttpResult>;

/** Calls the fixture's Graph API, by default with `defaultToken()` (the admin's). */
function graphCaller(f: () => Fixture, defaultToken: () => string): GraphCall {
  return (method, path, body, token = defaultToken()) =>
    https(f().emulator, `${f().emulator.graphUrl}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
}

export interface GraphSpecFixture {
  /** The spec file's fixture: filled in by its `beforeAll`, closed by its `afterAll`. */
  f: Fixture;
  /** The admin's Graph token, taken once the fixture has started. */
  adminToken(): string;
  /** Calls the fixture's Graph API, by default with the admin's token. */
  graph: GraphCall;
}

/** One fixture for the whole spec file (started before its tests, closed after them) and its Graph API. */
export function useGraphFixture(): GraphSpecFixture {
  const f = {} as Fixture;
  let adminToken = '';
  beforeAll(async () => {
    Object.assign(f, await startFixture());
    adminToken = await f.graph.accessToken();
  });
  afterAll(async () => {
    await f.close?.();
  });
  return {
    f,
    adminToken: () => adminToken,
    graph: graphCaller(
      () => f,
      () => adminToken,
    ),
  };
}

/** `/servicePrincipals/{resourceId}/appRoleAssignedTo`: the assignments a resource grants. */
export const assignedTo = (resourceId: string) => `/servicePrincipals/${resourceId}/appRoleAssignedTo`;
/** `/servicePrincipals/{principalId}/appRoleAssignments`: the assignments a principal holds. */
export const assignmentsOf = (principalId: string) => `/servicePrincipals/${principalId}/appRoleAssignments`;

/** Checks a Graph error answer and returns its `error` object. */
export function expectGraphError(res: HttpResult, status: number, code: string) {
  expect(res.status, res.text).toBe(status);
  const { error } = res.json() as {
    error: { code: string; message: string; innerError: Record<string, string> };
  };
  expect(error.code).toBe(code);
  expect(typeof error.message).toBe('string');
  expect(error.innerError['request-id']).toMatch(/^[0-9a-f-]{36}$/);
  return error;
}

export interface TestClient {
  appId: string;
  objectId: string;
  spId: string;
  cert: CertificateAndKey;
}

/** A new application with a service principal and a registered certificate. */
export async function newClient(f: Fixture, name: string): Promise<TestClient> {
  const app = await f.graph.createApplication({ displayName: `${name}-${randomUUID().slice(0, 8)}` });
  const sp = await f.graph.createServicePrincipal(app.appId);
  const cert = createSelfSignedCertificate({ commonName: name });
  await f.graph.addCertificate(app.id, cert.certificatePem);
  return { appId: app.appId, objectId: app.id, spId: sp.id, cert };
}

/** The client's token response for `scope` (the fixture's API unless told). */
export async function tokenFor(f: Fixture, client: TestClient, scope?: string): Promise<HttpResult> {
  const assertion = await clientAssertion(f.emulator.tokenEndpoint, client.appId, client.cert);
  return postForm(f.emulator, assertionForm(client.appId, assertion, scope));
}

/** The `roles` of the client's next token for `scope`. */
export async function rolesInToken(f: Fixture, client: TestClient, scope?: string): Promise<unknown> {
  const res = await tokenFor(f, client, scope);
  expect(res.status, res.text).toBe(200);
  return decodeJwt(String(res.json().access_token)).payload.roles;
}

/** A Graph token of a new client holding exactly these Microsoft Graph permissions. */
export async function graphTokenWith(f: Fixture, ...permissions: GraphRoleValue[]): Promise<string> {
  const client = await newClient(f, 'graph-caller');
  const graphSp = await f.graph.findServicePrincipalByAppId(GRAPH_APP_ID);
  for (const permission of permissions)
    await f.graph.assignAppRole({
      principalId: client.spId,
      resourceId: graphSp!.id,
      appRoleId: GRAPH_ROLE_IDS[permission],
    });
  const res = await tokenFor(f, client, 'https://graph.microsoft.com/.default');
  expect(res.status, res.text).toBe(200);
  const token = String(res.json().access_token);
  expect(decodeJwt(token).payload.roles ?? []).toEqual(permissions);
  return token;
}
