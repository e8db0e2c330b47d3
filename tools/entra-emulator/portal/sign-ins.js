// "Sign-in logs" of the admin page: the Graph beta query and the table rows, for the tenant view
// and for one application's view. Like app.js, every element is built with textContent, never
// HTML: an application's display name or an error's text is whatever its author chose.
'use strict';

window.signInLogs = (() => {
  const SERVICE_PRINCIPALS = "signInEventTypes/any(t: t eq 'servicePrincipal')";
  /** The newest this many are shown. */
  const PAGE = 200;
  const CREDENTIALS = { certificate: 'Certificate', clientSecret: 'Client secret', none: 'None' };

  /** `/auditLogs/signIns?…` (under /graph/beta) for every application or one, all results or one. */
  function path(appId, result) {
    const clauses = [SERVICE_PRINCIPALS];
    if (appId) clauses.push(`appId eq '${appId.replace(/'/g, "''")}'`);
    if (result === 'success') clauses.push('status/errorCode eq 0');
    if (result === 'failure') clauses.push('status/errorCode ne 0');
    return `/auditLogs/signIns?$top=${PAGE}&$filter=${encodeURIComponent(clauses.join(' and '))}`;
  }

  const time = (iso) => `${iso.slice(0, 19).replace('T', ' ')} UTC`;

  function credential(entry, el) {
    const parts = [];
    if (entry.servicePrincipalCredentialThumbprint)
      parts.push(el('div', { text: `Thumbprint ${entry.servicePrincipalCredentialThumbprint}` }));
    if (entry.servicePrincipalCredentialKeyId)
      parts.push(el('div', { text: `Key ID ${entry.servicePrincipalCredentialKeyId}` }));
    return el('td', { class: 'mono' }, ...(parts.length ? parts : ['—']));
  }

  function result(entry, el) {
    const { errorCode, failureReason, additionalDetails } = entry.status;
    const details = additionalDetails ? [el('div', { class: 'muted', text: additionalDetails })] : [];
    if (errorCode === 0)
      return el('td', {}, el('div', { class: 'state state-active', text: 'Success' }), ...details);
    return el(
      'td',
      {},
      el('div', { class: 'state state-expired', text: `Failure · AADSTS${errorCode}` }),
      el('div', { class: 'reason', text: failureReason || '' }),
      ...details,
    );
  }

  /** One row per sign-in; `withApp` adds the application column (the tenant view). */
  function rows(entries, el, withApp) {
    if (entries.length === 0)
      return [el('tr', {}, el('td', { colspan: withApp ? '7' : '6', class: 'muted', text: 'No sign-ins.' }))];
    return entries.map((entry) =>
      el(
        'tr',
        { 'data-sign-in': entry.id, 'data-error-code': String(entry.status.errorCode) },
        el('td', { text: time(entry.createdDateTime) }),
        ...(withApp
          ? [
              el(
                'td',
                {},
                el('div', { text: entry.appDisplayName || '—' }),
                el('div', { class: 'mono', text: entry.appId || '—' }),
              ),
            ]
          : []),
        el('td', { text: CREDENTIALS[entry.clientCredentialType] || entry.clientCredentialType }),
        credential(entry, el),
        el('td', { text: entry.resourceDisplayName || entry.resourceId || '—' }),
        el('td', { class: 'mono address', text: entry.ipAddress || '—' }),
        result(entry, el),
      ),
    );
  }

  return { path, rows, PAGE };
})();
