/**
 * `<validate-client-certificate validate-revocation validate-trust validate-not-before
 *   validate-not-after ignore-error><identities><identity …/></identities></validate-client-certificate>`
 *
 * Checks `context.Request.Certificate` (the certificate of the TLS connection; the gateway must
 * be started with `clientCertificates`, in `passthrough` mode to let this policy decide):
 * - validate-trust (true): the chain verifies against the gateway's trusted client CAs;
 * - validate-not-before / validate-not-after (true): against the gateway clock;
 * - identities (up to 10): the certificate must match every attribute of at least one identity:
 *   thumbprint (SHA-1, case-insensitive), serial-number, common-name, subject, dns-name,
 *   issuer-subject, issuer-thumbprint. `issuer-certificate-id` is refused (no certificate store).
 * - validate-revocation defaults to true in APIM; this gateway cannot check revocation (no
 *   OCSP/CRL), so the policy must say `validate-revocation="false"` explicitly, otherwise it does
 *   not load: a check is never silently skipped.
 * - Failure: 401 `{"statusCode":401,"message":"Invalid client certificate: <reason>."}` (the
 *   status and text are this gateway's choice: the APIM docs do not state them); with
 *   ignore-error="true" the request continues.
 */
import { ApimError } from './apim-errors';
import type { ClientCertificateInfo, PolicyContext, PolicyStatement } from './policy-context';
import { ElementReader, PolicyElement } from './policy-xml';

type IdentityField =
  | 'thumbprint'
  | 'serial-number'
  | 'common-name'
  | 'subject'
  | 'dns-name'
  | 'issuer-subject'
  | 'issuer-thumbprint';
const IDENTITY_FIELDS: IdentityField[] = [
  'thumbprint',
  'serial-number',
  'common-name',
  'subject',
  'dns-name',
  'issuer-subject',
  'issuer-thumbprint',
];

type Identity = Partial<Record<IdentityField, string>>;

const normalizeHex = (v: string) => v.replace(/[\s:]/g, '').toUpperCase();
const normalizeDn = (v: string) =>
  v
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)
    .join(', ')
    .toLowerCase();

function commonName(subject: string): string | undefined {
  for (const part of subject.split(', ')) if (part.startsWith('CN=')) return part.slice(3);
  return undefined;
}

function matches(cert: ClientCertificateInfo, identity: Identity): boolean {
  for (const [field, expected] of Object.entries(identity) as Array<[IdentityField, string]>) {
    switch (field) {
      case 'thumbprint':
        if (normalizeHex(expected) !== cert.thumbprint) return false;
        break;
      case 'serial-number':
        if (normalizeHex(expected).replace(/^0+/, '') !== cert.serialNumber.replace(/^0+/, '')) return false;
        break;
      case 'common-name':
        if (commonName(cert.subject) !== expected) return false;
        break;
      case 'subject':
        if (normalizeDn(expected) !== normalizeDn(cert.subject)) return false;
        break;
      case 'dns-name':
        if (!cert.dnsNames.some((n) => n.toLowerCase() === expected.toLowerCase())) return false;
        break;
      case 'issuer-subject':
        if (normalizeDn(expected) !== normalizeDn(cert.issuer)) return false;
        break;
      case 'issuer-thumbprint':
        if (cert.issuerThumbprint === undefined || normalizeHex(expected) !== cert.issuerThumbprint)
          return false;
        break;
    }
  }
  return true;
}

export function compileValidateClientCertificate(file: string, element: PolicyElement): PolicyStatement {
  const r = new ElementReader(file, element);
  r.allowAttributes([
    'id',
    'validate-revocation',
    'validate-trust',
    'validate-not-before',
    'validate-not-after',
    'ignore-error',
  ]);
  r.noText();
  r.allowChildren(['identities'], [], ['identities']);
  if (r.boolean('validate-revocation', true)) {
    throw r.error(
      'validate-revocation is true (the APIM default) but this gateway cannot check revocation (no OCSP/CRL); set validate-revocation="false"',
    );
  }
  const validateTrust = r.boolean('validate-trust', true);
  const validateNotBefore = r.boolean('validate-not-before', true);
  const validateNotAfter = r.boolean('validate-not-after', true);
  const ignoreError = r.boolean('ignore-error', false);
  const identities: Identity[] = [];
  const identitiesElement = r.children('identities')[0];
  if (identitiesElement) {
    const ir = new ElementReader(file, identitiesElement);
    ir.allowAttributes([]);
    ir.noText();
    ir.allowChildren(['identity']);
    if (identitiesElement.children.length > 10) throw ir.error('at most 10 <identity> elements are allowed');
    for (const child of identitiesElement.children) {
      const c = new ElementReader(file, child);
      c.allowAttributes(IDENTITY_FIELDS, ['issuer-certificate-id']);
      c.noChildren();
      c.noText();
      const identity: Identity = {};
      for (const field of IDENTITY_FIELDS) {
        const v = c.optional(field);
        if (v === undefined) continue;
        if (v.trim() === '') throw c.error(`attribute ${field} must not be empty`);
        identity[field] = v.trim();
      }
      if (Object.keys(identity).length === 0) throw c.error('an <identity> needs at least one attribute');
      identities.push(identity);
    }
  }

  return {
    name: 'validate-client-certificate',
    line: element.line,
    execute(ctx: PolicyContext): void {
      const fail = (reason: string, message: string): void => {
        if (ignoreError) return;
        throw new ApimError(
          401,
          `Invalid client certificate: ${message}.`,
          'validate-client-certificate',
          reason,
        );
      };
      const cert = ctx.request.clientCertificate;
      if (!cert) return fail('ClientCertificateNotPresent', 'no client certificate was presented');
      if (validateTrust && !cert.trusted)
        return fail('ClientCertificateNotTrusted', 'the certificate chain is not trusted');
      const now = ctx.now();
      if (validateNotBefore && now < cert.notBefore.getTime())
        return fail('ClientCertificateNotYetValid', 'the certificate is not yet valid');
      if (validateNotAfter && now > cert.notAfter.getTime())
        return fail('ClientCertificateExpired', 'the certificate has expired');
      if (identities.length > 0 && !identities.some((id) => matches(cert, id)))
        return fail(
          'ClientCertificateIdentityMismatch',
          'the certificate matches none of the allowed identities',
        );
    },
  };
}
