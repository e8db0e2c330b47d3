/// <reference lib="dom" />
/**
 * Issue 17's first "Done when": a partner's assertion signed with a certificate that is not
 * registered is refused (Microsoft's msal-node, AADSTS700027), and whoever runs the API finds
 * the attempt, with 700027, the thumbprint and the app, through Microsoft Graph beta and on the
 * emulator's admin page in Chromium.
 */
import { expect, test, type Page } from '@playwright/test';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfidentialClientApplication } from '@azure/msal-node';
import { createSelfSignedCertificate, parseCertificate, type CertificateAndKey } from '@certflow/certs';
import { GraphClient, readEmulatorInfo } from '@certflow/entra-emulator';
import { servedApi, stack, stackPartner } from './support';

const SCREENSHOTS = resolve(__dirname, '..', '..', 'dist', 'e2e', 'screenshots');
mkdirSync(SCREENSHOTS, { recursive: true });
const SERVICE_PRINCIPALS = "signInEventTypes/any(t: t eq 'servicePrincipal')";

interface SignIn {
  id: string;
  appId: string;
  appDisplayName: string;
  correlationId: string;
  clientCredentialType: string;
  servicePrincipalCredentialThumbprint: string;
  status: { errorCode: number; failureReason: string | null };
}

/** A token request as the partner makes it, with Microsoft's library; resolves with MSAL's error. */
async function msalRefusal(clientId: string, cert: CertificateAndKey, correlationId: string) {
  const file = stack();
  const cca = new ConfidentialClientApplication({
    auth: {
      clientId,
      authority: file.emulator.authority,
      knownAuthorities: [new URL(file.emulator.url).host],
      clientCertificate: {
        thumbprintSha256: parseCertificate(cert.certificatePem).thumbprints.sha256Hex,
        privateKey: cert.privateKeyPem,
      },
    },
  });
  return cca.acquireTokenByClientCredential({ scopes: [servedApi(file).scope], correlationId }).then(
    () => {
      throw new Error('the unregistered certificate was accepted');
    },
    (err: { errorCode?: string; errorMessage?: string }) => err,
  );
}

async function signIn(page: Page) {
  const file = stack();
  const { admin } = readEmulatorInfo(file.stateDir);
  await page.goto(`${file.emulator.url}/portal/`);
  await page.getByLabel('Client ID', { exact: true }).fill(admin.clientId);
  await page.getByLabel('Client secret', { exact: true }).fill(admin.clientSecret);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'App registrations' })).toBeVisible();
}

test("a partner's unregistered certificate is refused, and the attempt is found through Graph beta and on the admin page", async ({
  page,
  request,
}) => {
  const file = stack();
  const partner = stackPartner(file);
  const stranger = createSelfSignedCertificate({ commonName: `${partner.name}-not-registered` });
  const thumbprint = parseCertificate(stranger.certificatePem).thumbprints.sha256Hex;
  const correlationId = randomUUID();

  const refusal = await msalRefusal(partner.appId, stranger, correlationId);
  expect(refusal.errorCode).toBe('invalid_client');
  expect(refusal.errorMessage).toContain('AADSTS700027');
  expect(refusal.errorMessage).toContain(thumbprint);

  // Graph beta, as an API owner would ask it: this partner's failed service-principal sign-ins.
  const graph = await GraphClient.connect(readEmulatorInfo(file.stateDir));
  const response = await request.get(`${file.emulator.url}/graph/beta/auditLogs/signIns`, {
    headers: { authorization: `Bearer ${await graph.accessToken()}` },
    params: {
      $filter: `${SERVICE_PRINCIPALS} and appId eq '${partner.appId}' and status/errorCode ne 0`,
    },
  });
  graph.close();
  expect(response.status(), await response.text()).toBe(200);
  const { value } = (await response.json()) as { value: SignIn[] };
  const attempt = value.find((s) => s.correlationId === correlationId);
  expect(attempt).toMatchObject({
    appId: partner.appId,
    appDisplayName: partner.displayName,
    clientCredentialType: 'certificate',
    servicePrincipalCredentialThumbprint: thumbprint,
    status: { errorCode: 700027 },
  });
  expect(attempt!.status.failureReason).toContain('The key was not found');

  // The admin page: the tenant's sign-in logs, failures only, then the partner's own view.
  await signIn(page);
  await page.getByRole('link', { name: 'Sign-in logs' }).click();
  await expect(page.getByRole('heading', { name: 'Sign-in logs' })).toBeVisible();
  await page.getByLabel('Result', { exact: true }).selectOption('Failure');
  const row = page.locator(`#tenant-sign-in-rows tr[data-sign-in="${attempt!.id}"]`);
  await expect(row).toContainText('AADSTS700027');
  await expect(row).toContainText(thumbprint);
  await expect(row).toContainText(partner.displayName);
  await expect(row).toContainText(partner.appId);
  await expect(row).toContainText('Certificate');
  await expect(page.locator('#tenant-sign-in-rows tr[data-error-code="0"]')).toHaveCount(0);
  await page.screenshot({ path: join(SCREENSHOTS, 'sign-in-logs.png'), fullPage: true });

  await page.goto(`${file.emulator.url}/portal/#/applications/${partner.objectId}`);
  await expect(page.getByRole('heading', { name: partner.displayName })).toBeVisible();
  const appRow = page.locator(`#app-sign-in-rows tr[data-sign-in="${attempt!.id}"]`);
  await expect(appRow).toContainText('AADSTS700027');
  await expect(appRow).toContainText(thumbprint);
  await page.getByLabel('Sign-in result').selectOption('Success');
  await expect(appRow).toHaveCount(0);
  await expect(page.locator('#app-sign-in-rows tr[data-error-code]:not([data-error-code="0"])')).toHaveCount(
    0,
  );
});

test("an application's display name is shown as text on the sign-in logs, never run as markup", async ({
  page,
}) => {
  const file = stack();
  const graph = await GraphClient.connect(readEmulatorInfo(file.stateDir));
  const name = `<img src=x onerror="window.__signInXss=1">${randomUUID().slice(0, 8)}`;
  const app = await graph.createApplication({ displayName: name });
  await graph.createServicePrincipal(app.appId);
  graph.close();
  const refusal = await msalRefusal(
    app.appId,
    createSelfSignedCertificate({ commonName: 'hostile' }),
    randomUUID(),
  );
  expect(refusal.errorMessage).toContain('AADSTS700027');

  await page.setViewportSize({ width: 390, height: 844 }); // and readable at phone width
  await signIn(page);
  await page.goto(`${file.emulator.url}/portal/#/sign-ins`);
  const row = page.locator('#tenant-sign-in-rows tr', { hasText: app.appId });
  await expect(row).toContainText(name);
  await expect(page.locator('#tenant-sign-in-rows img')).toHaveCount(0);
  expect(
    await page.evaluate(() => (window as unknown as { __signInXss?: number }).__signInXss),
  ).toBeUndefined();
  const wide = await page.evaluate(() =>
    [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.scroll'))
      .map((e) => `${e.tagName}#${e.id}`),
  );
  expect(wide).toEqual([]);
});
