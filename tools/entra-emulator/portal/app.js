// "Certificates & secrets" for the certflow Entra ID emulator. Plain DOM, no framework, no
// third-party code. It talks only to this origin's Graph-shaped API with a bearer token that it
// keeps in memory (never in storage), and builds every element with textContent, never HTML.
'use strict';

const GRAPH = '/graph/v1.0';
const GRAPH_BETA = '/graph/beta';
const EXPIRING_DAYS = 30;
const state = { token: null, clientId: null, tenantId: null, adminAppId: null, tokenPath: null, view: 0 };
const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function show(section) {
  for (const id of ['sign-in', 'applications', 'application', 'sign-ins']) $(id).hidden = id !== section;
  $('sign-out').hidden = section === 'sign-in';
  $('sign-ins-link').hidden = section === 'sign-in';
}

function say(message) {
  $('status').textContent = message;
}

function fail(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

class GraphError extends Error {}

async function graph(method, path, body, base = GRAPH) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${state.token}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (response.status === 401) {
    state.token = null;
    route();
    throw new GraphError('Your sign-in has expired. Sign in again.');
  }
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) throw new GraphError(json?.error?.message ?? `Graph answered HTTP ${response.status}`);
  return json;
}

// ---- certificates in the browser: read, classify, fingerprint -------------------------------

const PRIVATE_KEY = /-----BEGIN ((RSA|EC|ENCRYPTED) )?PRIVATE KEY-----/;

/** The DER bytes of a .cer/.crt/.pem file, or an Error with a plain message. */
function certificateDer(bytes) {
  const text = new TextDecoder('latin1').decode(bytes);
  if (PRIVATE_KEY.test(text)) {
    throw new Error(
      'This file contains a private key. Upload only the public certificate (.cer); the private key must stay with its owner.',
    );
  }
  const pem = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(text);
  if (pem) {
    try {
      return Uint8Array.from(atob(pem[1].replace(/\s+/g, '')), (c) => c.charCodeAt(0));
    } catch {
      throw new Error('The PEM certificate in this file is damaged.');
    }
  }
  if (bytes[0] === 0x30 && bytes.length > 64) return bytes; // a DER SEQUENCE; the server checks the rest
  throw new Error('This is not a certificate: expected a DER (.cer) or PEM (.crt, .pem) X.509 certificate.');
}

const toBase64 = (bytes) => btoa(String.fromCharCode(...bytes));
const fromBase64 = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const hex = (buffer) =>
  [...new Uint8Array(buffer)]
    .map((b) => b.toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase();
const sha = async (alg, bytes) => hex(await crypto.subtle.digest(alg, bytes));

function validityState(start, end, now = Date.now()) {
  const from = Date.parse(start);
  const to = Date.parse(end);
  if (now < from) return ['not-yet-valid', 'Not yet valid'];
  if (now > to) return ['expired', 'Expired'];
  if (to - now < EXPIRING_DAYS * 86_400_000)
    return ['expiring', `Expires in ${count(Math.ceil((to - now) / 86_400_000), 'day')}`];
  return ['active', 'Active'];
}

const day = (iso) => (iso ? new Date(iso).toISOString().slice(0, 10) : '—');

/** `1 certificate`, `2 certificates`, `0 app registrations`. */
const count = (n, singular, plural = `${singular}s`) => `${n} ${n === 1 ? singular : plural}`;

// ---- views ---------------------------------------------------------------------------------

// Each view that starts drawing supersedes the ones before it: a view still waiting for Graph
// when the reader moved on (a list that answers after the application it led to) draws nothing.
const startView = () => ++state.view;
const superseded = (view) => view !== state.view;

async function showApplications() {
  const view = startView();
  show('applications');
  say('Loading app registrations…');
  const { value } = await graph('GET', '/applications');
  if (superseded(view)) return;
  const rows = $('application-rows');
  rows.replaceChildren(
    ...value.map((app) =>
      el(
        'tr',
        {},
        el(
          'td',
          {},
          el('a', {
            href: `#/applications/${encodeURIComponent(app.id)}`,
            text: app.displayName || '(no name)',
          }),
        ),
        el('td', { class: 'mono', text: app.appId }),
        el('td', { text: String(app.keyCredentials.length) }),
        el('td', { text: String(app.passwordCredentials.length) }),
      ),
    ),
  );
  say(count(value.length, 'app registration'));
}

let current = null;

async function showApplication(objectId) {
  const view = startView();
  show('application');
  say('Loading…');
  $('new-secret').hidden = true;
  $('new-secret-value').textContent = ''; // shown once: gone from the page when it is left
  const app = await graph(
    'GET',
    `/applications/${encodeURIComponent(objectId)}?$select=id,appId,displayName,identifierUris,keyCredentials,passwordCredentials,appRoles`,
  );
  if (superseded(view)) return;
  current = app;
  // The emulator refuses every change to its own admin application: offer none.
  const readOnly = app.appId === state.adminAppId;
  $('admin-note').hidden = !readOnly;
  $('upload-form').hidden = readOnly;
  $('secret-form').hidden = readOnly;
  $('application-title').textContent = app.displayName || '(no name)';
  $('app-id').textContent = app.appId;
  $('object-id').textContent = app.id;
  $('identifier-uris').textContent = app.identifierUris.join(', ') || '—';

  const certRows = await Promise.all(
    app.keyCredentials.map(async (cred) => {
      const sha256 = cred.key ? await sha('SHA-256', fromBase64(cred.key)) : '—';
      const [cls, label] = validityState(cred.startDateTime, cred.endDateTime);
      const remove = el('button', {
        type: 'button',
        class: 'secondary',
        text: 'Remove',
        'aria-label': `Remove certificate ${cred.customKeyIdentifier}`,
      });
      remove.addEventListener('click', () => confirmRemoval(cred));
      return el(
        'tr',
        { 'data-thumbprint': cred.customKeyIdentifier },
        el('td', { text: cred.displayName || '—' }),
        el(
          'td',
          { class: 'mono' },
          el('div', { text: `SHA-1 ${cred.customKeyIdentifier}` }),
          el('div', { text: `SHA-256 ${sha256}` }),
        ),
        el('td', { class: 'mono', text: cred.keyId }),
        el('td', { text: day(cred.startDateTime) }),
        el('td', { text: day(cred.endDateTime) }),
        el('td', { class: `state state-${cls}`, text: label }),
        el('td', {}, ...(readOnly ? [] : [remove])),
      );
    }),
  );
  if (superseded(view)) return;
  $('certificate-rows').replaceChildren(
    ...(certRows.length
      ? certRows
      : [el('tr', {}, el('td', { colspan: '7', class: 'muted', text: 'No certificates.' }))]),
  );

  const secretRows = app.passwordCredentials.map((p) => {
    const [cls, label] = validityState(p.startDateTime, p.endDateTime);
    const remove = el('button', {
      type: 'button',
      class: 'secondary',
      text: 'Delete',
      'aria-label': `Delete secret ${p.hint}…`,
    });
    remove.addEventListener('click', () => removeSecret(p));
    return el(
      'tr',
      {},
      el('td', { text: p.displayName || '—' }),
      el('td', { class: 'mono', text: `${p.hint}…` }),
      el('td', { text: day(p.endDateTime) }),
      el('td', { class: `state state-${cls}`, text: label }),
      el('td', {}, ...(readOnly ? [] : [remove])),
    );
  });
  $('secret-rows').replaceChildren(
    ...(secretRows.length
      ? secretRows
      : [el('tr', {}, el('td', { colspan: '5', class: 'muted', text: 'No client secrets.' }))]),
  );

  if (!(await showRoles(app, view))) return;
  if (!(await showAppSignIns(app, view))) return;
  say(
    `${app.displayName}: ${count(app.keyCredentials.length, 'certificate')}, ${count(app.passwordCredentials.length, 'secret')}`,
  );
}

/** Draws the application's roles; false when a later view superseded `view` meanwhile. */
async function showRoles(app, view) {
  const roles = app.appRoles.filter((r) => r.isEnabled && r.allowedMemberTypes.includes('Application'));
  $('roles-section').hidden = roles.length === 0;
  if (roles.length === 0) return true;
  const { value: found } = await graph('GET', `/servicePrincipals?$filter=appId eq '${app.appId}'`);
  const resource = found[0];
  const { value: principals } = await graph('GET', '/servicePrincipals');
  const assignments = resource
    ? (await graph('GET', `/servicePrincipals/${resource.id}/appRoleAssignedTo`)).value
    : [];
  if (superseded(view)) return false;
  $('role-rows').replaceChildren(
    ...roles.flatMap((role) => {
      const held = assignments.filter((a) => a.appRoleId === role.id);
      if (held.length === 0)
        return [
          el('tr', {}, el('td', { class: 'mono', text: role.value }), el('td', { text: '—' }), el('td')),
        ];
      return held.map((a) => {
        const remove = el('button', {
          type: 'button',
          class: 'secondary',
          text: 'Remove',
          'aria-label': `Remove ${role.value} from ${a.principalDisplayName}`,
        });
        remove.addEventListener('click', () => confirmRevoke(resource, role, a));
        return el(
          'tr',
          { 'data-assignment': a.id },
          el('td', { class: 'mono', text: role.value }),
          el('td', { text: a.principalDisplayName }),
          el('td', {}, remove),
        );
      });
    }),
  );
  $('assign-role').replaceChildren(...roles.map((r) => el('option', { value: r.id, text: r.value })));
  // Clients of this tenant only: not Microsoft Graph (a first-party resource), not this
  // registration itself, not the client signed in here, not the emulator's admin (the
  // emulator grants it nothing); by name.
  const clients = principals
    .filter(
      (p) =>
        p.appOwnerOrganizationId === state.tenantId &&
        ![app.appId, state.clientId, state.adminAppId].includes(p.appId),
    )
    .sort((a, b) => a.displayName.localeCompare(b.displayName));
  $('assign-principal').replaceChildren(
    ...clients.map((p) => el('option', { value: p.id, text: `${p.displayName} (${p.appId})` })),
  );
  $('assign-form').dataset.resourceId = resource ? resource.id : '';
  return true;
}

/** The tenant's sign-in logs (Graph beta), filtered by result. */
async function showTenantSignIns() {
  const view = startView();
  show('sign-ins');
  say('Loading sign-in logs…');
  const { value } = await graph(
    'GET',
    window.signInLogs.path(undefined, $('tenant-sign-in-result').value),
    undefined,
    GRAPH_BETA,
  );
  if (superseded(view)) return;
  $('tenant-sign-in-rows').replaceChildren(...window.signInLogs.rows(value, el, true));
  say(signInCount(value.length));
}

/** The application's sign-in logs; false when a later view superseded `view` meanwhile. */
async function showAppSignIns(app, view) {
  const { value } = await graph(
    'GET',
    window.signInLogs.path(app.appId, $('app-sign-in-result').value),
    undefined,
    GRAPH_BETA,
  );
  if (superseded(view)) return false;
  $('app-sign-in-rows').replaceChildren(...window.signInLogs.rows(value, el, false));
  return true;
}

const signInCount = (n) => (n < window.signInLogs.PAGE ? count(n, 'sign-in') : `The newest ${n} sign-ins`);

// ---- actions --------------------------------------------------------------------------------

/** PATCH keeps existing certificates by keyId (key null), as Graph requires the whole collection. */
const kept = (creds) => creds.map((c) => ({ keyId: c.keyId, key: null }));

async function upload(file) {
  fail('');
  if (!file) return fail('Choose a certificate file first.');
  if (file.size > 64 * 1024) return fail('This file is too large to be a certificate (over 64 KiB).');
  let der;
  try {
    der = certificateDer(new Uint8Array(await file.arrayBuffer()));
  } catch (err) {
    return fail(err.message);
  }
  const sha1 = await sha('SHA-1', der);
  if (current.keyCredentials.some((c) => c.customKeyIdentifier?.toUpperCase() === sha1)) {
    return fail(`This certificate (SHA-1 ${sha1}) is already registered on ${current.displayName}.`);
  }
  const description = $('certificate-description').value.trim();
  await graph('PATCH', `/applications/${current.id}`, {
    keyCredentials: [
      ...kept(current.keyCredentials),
      {
        type: 'AsymmetricX509Cert',
        usage: 'Verify',
        key: toBase64(der),
        ...(description ? { displayName: description } : {}),
      },
    ],
  });
  $('upload-form').reset();
  await showApplication(current.id);
  say(`Certificate ${sha1} added.`);
}

/** Asks in the page's own dialog (never a browser prompt); runs `action` only when confirmed. */
function confirmThen(title, text, action) {
  const dialog = $('confirm-dialog');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  dialog.returnValue = '';
  dialog.onclose = () => {
    if (dialog.returnValue === 'confirm') run(action);
  };
  dialog.showModal();
}

function confirmRemoval(cred) {
  confirmThen(
    'Remove certificate?',
    `Remove the certificate with SHA-1 thumbprint ${cred.customKeyIdentifier} from ${current.displayName}? Client assertions signed with it will be refused at once.`,
    async () => {
      await graph('PATCH', `/applications/${current.id}`, {
        keyCredentials: kept(current.keyCredentials.filter((c) => c.keyId !== cred.keyId)),
      });
      await showApplication(current.id);
      say(`Certificate ${cred.customKeyIdentifier} removed.`);
    },
  );
}

function confirmRevoke(resource, role, assignment) {
  const who = assignment.principalDisplayName;
  confirmThen(
    'Remove role assignment?',
    `Remove ${role.value} of ${current.displayName} from ${who}? Tokens issued to ${who} from now on will not carry it.`,
    async () => {
      await graph(
        'DELETE',
        `/servicePrincipals/${resource.id}/appRoleAssignedTo/${encodeURIComponent(assignment.id)}`,
      );
      await showApplication(current.id);
      say(`${role.value} removed from ${who}.`);
    },
  );
}

async function addSecret() {
  const description = $('secret-description').value.trim();
  const created = await graph('POST', `/applications/${current.id}/addPassword`, {
    passwordCredential: description ? { displayName: description } : {},
  });
  $('secret-form').reset();
  await showApplication(current.id);
  $('new-secret-value').textContent = created.secretText;
  $('new-secret').hidden = false;
  say('New client secret created. Copy it now.');
}

async function removeSecret(secret) {
  if (!window.confirm(`Delete the client secret ${secret.hint}… from ${current.displayName}?`)) return;
  await run(async () => {
    await graph('PATCH', `/applications/${current.id}`, {
      passwordCredentials: current.passwordCredentials
        .filter((p) => p.keyId !== secret.keyId)
        .map((p) => ({ keyId: p.keyId })),
    });
    await showApplication(current.id);
    say(`Client secret ${secret.hint}… deleted.`);
  });
}

async function assignRole() {
  const resourceId = $('assign-form').dataset.resourceId;
  if (!resourceId)
    return fail(`${current.displayName} has no service principal yet, so its roles cannot be assigned.`);
  if (!$('assign-principal').value) return fail('There is no application to assign the role to.');
  await graph('POST', `/servicePrincipals/${resourceId}/appRoleAssignedTo`, {
    principalId: $('assign-principal').value,
    resourceId,
    appRoleId: $('assign-role').value,
  });
  await showApplication(current.id);
  say('Role assigned.');
}

async function signIn(clientId, clientSecret) {
  const response = await fetch(state.tokenPath, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: clientId,
      client_secret: clientSecret,
      scope: 'https://graph.microsoft.com/.default',
    }),
  });
  const json = await response.json();
  if (!response.ok) throw new GraphError((json.error_description ?? 'Sign-in failed.').split('\r\n')[0]);
  state.token = json.access_token;
  state.clientId = clientId.toLowerCase();
  $('sign-in-form').reset();
}

// ---- wiring ---------------------------------------------------------------------------------

async function run(action) {
  fail('');
  try {
    await action();
  } catch (err) {
    fail(err.message);
    say('');
  }
}

function route() {
  if (!state.token) {
    show('sign-in');
    say('');
    $('client-id').focus();
    return;
  }
  const match = /^#\/applications\/(.+)$/.exec(location.hash);
  if (location.hash === '#/sign-ins') run(showTenantSignIns);
  else run(() => (match ? showApplication(decodeURIComponent(match[1])) : showApplications()));
}

async function start() {
  const config = await (await fetch('config.json')).json();
  state.tenantId = config.tenantId;
  state.adminAppId = config.adminAppId;
  state.tokenPath = config.tokenPath;
  $('tenant').textContent = `tenant ${config.tenantId}`;

  $('sign-in-form').addEventListener('submit', (e) => {
    e.preventDefault();
    run(async () => {
      await signIn($('client-id').value.trim(), $('client-secret').value);
      route();
    });
  });
  $('sign-out').addEventListener('click', () => {
    state.token = null;
    state.clientId = null;
    location.hash = '#/';
    route();
  });
  $('upload-form').addEventListener('submit', (e) => {
    e.preventDefault();
    run(() => upload($('certificate-file').files[0]));
  });
  const zone = $('drop-zone');
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    run(() => upload(e.dataTransfer.files[0]));
  });
  $('secret-form').addEventListener('submit', (e) => {
    e.preventDefault();
    run(addSecret);
  });
  $('assign-form').addEventListener('submit', (e) => {
    e.preventDefault();
    run(assignRole);
  });
  $('tenant-sign-in-result').addEventListener('change', () => run(showTenantSignIns));
  $('app-sign-in-result').addEventListener('change', () =>
    run(async () => {
      if (await showAppSignIns(current, state.view)) say('Sign-in logs updated.');
    }),
  );
  window.addEventListener('hashchange', route);
  route();
}

start().catch((err) => fail(`The page could not start: ${err.message}`));
