/// <reference lib="dom" />
import { expect, test, type Page } from '@playwright/test';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createSelfSignedCertificate, parseCertificate, pemToDer } from '@certflow/certs';
import { GraphClient, readEmulatorInfo } from '@certflow/entra-emulator';
import { requestToken, servedApi, stack } from './support';

const SCREENSHOTS = resolve(__dirname, '..', '..', 'dist', 'e2e', 'screenshots');
mkdirSync(SCREENSHOTS, { recursive: true });

/** A partner registered through Graph with no certificate yet, and files a person might upload. */
async function newPartner() {
  const file = stack();
  const graph = await GraphClient.connect(readEmulatorInfo(file.stateDir));
  const app = await graph.createApplication({ displayName: `portal-partner-${Date.now()}` });
  const sp = await graph.createServicePrincipal(app.appId);
  const dir = mkdtempSync(join(tmpdir(), 'certflow-portal-'));
  const write = (name: string, data: string | Uint8Array) => {
    writeFileSync(join(dir, name), data);
    return join(dir, name);
  };
  const first = createSelfSignedCertificate({ commonName: 'portal-partner-1' });
  const second = createSelfSignedCertificate({ commonName: 'portal-partner-2' });
  return {
    file,
    graph,
    app,
    sp,
    first,
    second,
    files: {
      firstCer: write('partner.cer', pemToDer(first.certificatePem)),
      secondPem: write('partner-2.pem', second.certificatePem),
      privateKey: write('partner.key.pem', first.privateKeyPem + first.certificatePem),
      garbageDer: write(
        'damaged.cer',
        Buffer.concat([Buffer.from([0x30, 0x82, 0x03, 0x00]), Buffer.alloc(120, 7)]),
      ),
      text: write('notes.crt', 'this is not a certificate\n'),
    },
  };
}

async function signIn(page: Page) {
  const file = stack();
  const { admin } = readEmulatorInfo(file.stateDir);
  await page.goto(`${file.emulator.url}/portal/`);
  await page.getByLabel('Client ID', { exact: true }).fill(admin.clientId);
  await page.getByLabel('Client secret', { exact: true }).fill(admin.clientSecret);
  await page.getByLabel('Client secret', { exact: true }).press('Enter'); // keyboard only
  await expect(page.getByRole('heading', { name: 'App registrations' })).toBeVisible();
}

const certificateRows = (page: Page) => page.locator('#certificate-rows tr[data-thumbprint]');
const keyCount = async (graph: GraphClient, id: string) =>
  (await graph.getApplication(id)).keyCredentials.length;

test('upload a partner certificate, the partner gets a token; remove it, its next assertion fails with AADSTS700027', async ({
  page,
  request,
}) => {
  const p = await newPartner();
  await signIn(page);
  await expect(page.getByRole('link', { name: p.app.displayName })).toBeVisible();
  await page.screenshot({ path: join(SCREENSHOTS, 'portal-applications.png'), fullPage: true });

  await page.getByRole('link', { name: p.app.displayName }).click();
  await expect(page.getByRole('heading', { name: p.app.displayName })).toBeVisible();
  await page.getByLabel('Upload certificate (.cer, .crt or .pem)').setInputFiles(p.files.firstCer);
  await page.getByLabel('Description (optional)').fill('partner key 2026');
  await page.getByRole('button', { name: 'Add' }).click();

  const sha1 = parseCertificate(p.first.certificatePem).thumbprints.sha1Hex;
  const sha256 = parseCertificate(p.first.certificatePem).thumbprints.sha256Hex;
  await expect(certificateRows(page)).toHaveCount(1);
  await page.goto(`${p.file.emulator.url}/portal/#/`);
  await expect(page.locator('#status')).toHaveText(/^\d+ app registrations$/);
  await page.getByRole('link', { name: p.app.displayName }).click();
  await expect(page.locator('#status')).toHaveText(`${p.app.displayName}: 1 certificate, 0 secrets`);
  const row = page.locator(`#certificate-rows tr[data-thumbprint="${sha1}"]`);
  await expect(row).toContainText(`SHA-256 ${sha256}`);
  await expect(row).toContainText('Active');
  await expect(row).toContainText('partner key 2026');

  const token = await requestToken(request, p.file, p.app.appId, p.first);
  expect(token.status()).toBe(200);

  // Drag and drop a PEM: a second certificate on the same registration (rotation).
  const pem = p.second.certificatePem;
  await page.evaluate((text) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([text], 'partner-2.pem', { type: 'application/x-pem-file' }));
    document
      .getElementById('drop-zone')!
      .dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }, pem);
  await expect(certificateRows(page)).toHaveCount(2);
  await page.screenshot({ path: join(SCREENSHOTS, 'portal-certificates.png'), fullPage: true });

  page.once('dialog', () => {
    throw new Error('removal must use the in-page dialog, not a browser prompt');
  });
  await row.getByRole('button', { name: `Remove certificate ${sha1}` }).click();
  await expect(page.locator('#confirm-text')).toContainText(sha1);
  await page.getByRole('button', { name: 'Remove', exact: true }).click();
  await expect(certificateRows(page)).toHaveCount(1);
  await expect(page.locator(`#certificate-rows tr[data-thumbprint="${sha1}"]`)).toHaveCount(0);

  const refused = await requestToken(request, p.file, p.app.appId, p.first);
  expect(refused.status()).toBe(401);
  expect((await refused.json()).error_codes).toEqual([700027]);
  expect((await requestToken(request, p.file, p.app.appId, p.second)).status()).toBe(200);
});

test('every refused upload says why and changes nothing', async ({ page }) => {
  const p = await newPartner();
  await signIn(page);
  await page.goto(`${p.file.emulator.url}/portal/#/applications/${p.app.id}`);
  const upload = async (path: string) => {
    await page.getByLabel('Upload certificate (.cer, .crt or .pem)').setInputFiles(path);
    await page.getByRole('button', { name: 'Add' }).click();
  };
  await upload(p.files.firstCer);
  await expect(certificateRows(page)).toHaveCount(1);

  const cases: [string, string][] = [
    [p.files.privateKey, 'This file contains a private key'],
    [p.files.text, 'This is not a certificate'],
    [p.files.garbageDer, 'keyCredentials'], // refused by the server, its message shown
    [p.files.firstCer, 'is already registered'],
  ];
  for (const [path, message] of cases) {
    await upload(path);
    await expect(page.getByRole('alert')).toContainText(message);
    await expect(certificateRows(page)).toHaveCount(1);
    expect(await keyCount(p.graph, p.app.id)).toBe(1);
  }
});

test('a new client secret is shown once and works; roles can be assigned to a partner and removed again', async ({
  page,
  request,
}) => {
  const p = await newPartner();
  const api = servedApi(p.file);
  await signIn(page);
  await page.goto(`${p.file.emulator.url}/portal/#/applications/${p.app.id}`);
  await expect(page.locator('#status')).toHaveText(`${p.app.displayName}: 0 certificates, 0 secrets`);
  await page.getByLabel('New client secret, description').fill('comparison only');
  await page.getByRole('button', { name: 'New client secret' }).click();
  await expect(page.locator('#new-secret')).toBeVisible();
  const secret = await page.locator('#new-secret-value').textContent();
  expect(secret?.length).toBeGreaterThan(20);
  const roles = async () => {
    const response = await request.post(p.file.emulator.tokenEndpoint, {
      form: {
        grant_type: 'client_credentials',
        client_id: p.app.appId,
        client_secret: secret!,
        scope: api.scope,
      },
    });
    expect(response.status()).toBe(200);
    const token = ((await response.json()) as { access_token: string }).access_token;
    return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).roles as unknown;
  };
  expect(await roles()).toBeUndefined();
  await page.goto(`${p.file.emulator.url}/portal/#/`);
  await page.goto(`${p.file.emulator.url}/portal/#/applications/${p.app.id}`);
  await expect(page.locator('#secret-rows')).toContainText(secret!.slice(0, 3));
  await expect(page.locator('#status')).toHaveText(`${p.app.displayName}: 0 certificates, 1 secret`);
  await expect(page.locator('#new-secret')).toBeHidden();
  await expect(page.locator('body')).not.toContainText(secret!);

  // The API's app role, assigned to the new partner from the API's page. The picker offers this
  // tenant's client registrations, never Microsoft Graph, and starts on one of them.
  await page.goto(`${p.file.emulator.url}/portal/#/applications/${api.objectId}`);
  const principal = page.getByLabel('to the service principal of');
  await expect(principal.locator('option', { hasText: p.app.displayName })).toHaveCount(1);
  await expect(principal.locator('option', { hasText: 'Microsoft Graph' })).toHaveCount(0);
  await expect(principal.locator('option', { hasText: api.displayName })).toHaveCount(0);
  const first = await principal.locator('option').first().textContent();
  expect(
    await principal.evaluate((select: HTMLSelectElement) => select.selectedOptions[0]?.textContent),
  ).toBe(first);
  await page.getByLabel('Role').selectOption({ label: 'Orders.Read' });
  await principal.selectOption({ label: `${p.app.displayName} (${p.app.appId})` });
  await page.getByRole('button', { name: 'Assign' }).click();
  const removeButton = page.getByRole('button', { name: `Remove Orders.Read from ${p.app.displayName}` });
  await expect(removeButton).toBeVisible();
  expect(await roles()).toEqual(['Orders.Read']);

  // Removed after the in-page confirmation: the next token no longer carries the role.
  page.once('dialog', () => {
    throw new Error('removal must use the in-page dialog, not a browser prompt');
  });
  await removeButton.click();
  await expect(page.locator('#confirm-title')).toHaveText('Remove role assignment?');
  await expect(page.locator('#confirm-text')).toContainText(
    `Remove Orders.Read of ${api.displayName} from ${p.app.displayName}?`,
  );
  await page.getByRole('button', { name: 'Remove', exact: true }).click();
  await expect(removeButton).toHaveCount(0);
  await expect(page.locator('#status')).toHaveText(`Orders.Read removed from ${p.app.displayName}.`);
  await expect(page.locator('#role-rows')).not.toContainText(p.app.displayName);
  expect(await roles()).toBeUndefined();
  expect(
    (await p.graph.listAppRoleAssignments(p.sp.id)).filter((a) => a.resourceId === api.servicePrincipalId),
  ).toEqual([]);
});

test('a list that answers after the reader moved on to an application does not draw over it', async ({
  page,
}) => {
  const p = await newPartner();
  await signIn(page);
  // The list's Graph answer is held back (the real answer, later) while the reader opens the
  // application: the list must not replace the application's view when it finally arrives.
  let releaseList = () => {};
  const listHeld = new Promise<void>((resolveList) => (releaseList = resolveList));
  await page.route(/\/graph\/v1\.0\/applications$/, async (route) => {
    await listHeld;
    await route.continue();
  });
  await page.goto(`${p.file.emulator.url}/portal/#/`);
  await page.goto(`${p.file.emulator.url}/portal/#/applications/${p.app.id}`);
  await expect(page.locator('#status')).toHaveText(`${p.app.displayName}: 0 certificates, 0 secrets`);
  const listAnswered = page.waitForResponse(/\/graph\/v1\.0\/applications$/);
  releaseList();
  await listAnswered;
  await expect(page.getByRole('heading', { name: p.app.displayName })).toBeVisible();
  await expect(page.locator('#status')).toHaveText(`${p.app.displayName}: 0 certificates, 0 secrets`);
});

test('readable at phone width', async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await signIn(page);
  await page.getByRole('link', { name: 'certflow orders API' }).click();
  await expect(page.getByRole('heading', { name: 'Certificates' })).toBeVisible();
  await page.screenshot({ path: join(SCREENSHOTS, 'portal-phone.png'), fullPage: true });
  const wide = await page.evaluate(() =>
    [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.scroll'))
      .map((e) => `${e.tagName}#${e.id}.${e.className}`),
  );
  expect(wide).toEqual([]);
  expect(
    await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth),
  ).toBeLessThanOrEqual(0);
});

test('the admin API refuses requests from other origins', async ({ request }) => {
  const file = stack();
  const graph = await GraphClient.connect(readEmulatorInfo(file.stateDir));
  const headers = { authorization: `Bearer ${await graph.accessToken()}` };
  expect((await request.get(`${file.emulator.graphUrl}/applications`, { headers })).status()).toBe(200);
  const foreign = await request.get(`${file.emulator.graphUrl}/applications`, {
    headers: { ...headers, origin: 'https://attacker.example' },
  });
  expect(foreign.status()).toBe(403);
});
