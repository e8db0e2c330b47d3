/**
 * `<validate-azure-ad-token tenant-id header-name|query-parameter-name failed-validation-httpcode
 *   failed-validation-error-message output-token-variable-name>` with `<client-application-ids>`,
 * `<backend-application-ids>`, `<audiences>`, `<required-claims>`.
 *
 * Runs as validate-jwt with what APIM derives from the tenant:
 * - keys: `<entra instance>/<tenant-id>/v2.0/.well-known/openid-configuration` (the instance is
 *   the gateway's `entraInstance`, default https://login.microsoftonline.com), cached the same way;
 * - issuers: `<entra instance>/<tenant-id>/v2.0` (v2 tokens) and `https://sts.windows.net/<tenant-id>/` (v1);
 * - audiences: `<audiences>` plus `<backend-application-ids>` (either form accepted), when any is given;
 * - client-application-ids (required, as in APIM): the token's `azp` (v2) or `appid` (v1) must be one of them.
 * header-name defaults to Authorization (scheme Bearer); token-value is an expression giving the token.
 */
import { ApimError } from './apim-errors';
import type { ValidatedJwt } from './jwt-validation';
import type { PolicyContext, PolicyStatement } from './policy-context';
import { ElementReader, PolicyElement } from './policy-xml';
import { compileValidateJwt, ValidateJwtDeps } from './validate-jwt-policy';

export interface ValidateAzureAdTokenDeps extends ValidateJwtDeps {
  /** e.g. https://login.microsoftonline.com or the local emulator's URL. */
  entraInstance: string;
}

const GUIDISH = /^[0-9A-Za-z.-]+$/;

export function compileValidateAzureAdToken(
  element: PolicyElement,
  deps: ValidateAzureAdTokenDeps,
): PolicyStatement {
  const r = new ElementReader(deps.file, element);
  r.allowAttributes([
    'id',
    'tenant-id',
    'header-name',
    'query-parameter-name',
    'failed-validation-httpcode',
    'failed-validation-error-message',
    'output-token-variable-name',
    'token-value',
  ]);
  r.noText();
  r.allowChildren(
    ['client-application-ids', 'backend-application-ids', 'audiences', 'required-claims'],
    ['decryption-keys'],
    ['client-application-ids', 'backend-application-ids', 'audiences', 'required-claims'],
  );
  const tenantId = r.required('tenant-id').trim();
  if (!GUIDISH.test(tenantId)) throw r.error(`tenant-id '${tenantId}' is not a tenant id or domain`);
  if (
    ['header-name', 'query-parameter-name', 'token-value'].filter((a) => r.optional(a) !== undefined).length >
    1
  ) {
    throw r.error('header-name, query-parameter-name and token-value are mutually exclusive');
  }

  const ids = (name: string): string[] => {
    const el = r.children(name)[0];
    if (!el) return [];
    const c = new ElementReader(deps.file, el);
    c.allowAttributes([]);
    c.noText();
    c.allowChildren(['application-id']);
    const values = el.children.map((child) => {
      const cr = new ElementReader(deps.file, child);
      cr.allowAttributes([]);
      cr.noChildren();
      if (child.text.trim() === '') throw cr.error('must not be empty');
      return child.text.trim();
    });
    if (values.length === 0) throw c.error('at least one <application-id> is required');
    return values;
  };
  const clientIds = ids('client-application-ids');
  // Required, as in APIM: without it any application of the tenant would pass, whatever it is.
  if (clientIds.length === 0)
    throw r.error(
      '<client-application-ids> is required: without it any application in the tenant would be let in',
    );
  const backendIds = ids('backend-application-ids');
  const instance = deps.entraInstance.replace(/\/+$/, '');
  const variable = `validate-azure-ad-token:${element.line}`;

  // The equivalent validate-jwt element (same line numbers, so run-time sources stay meaningful).
  const at = (
    name: string,
    attributes: Record<string, string> = {},
    children: PolicyElement[] = [],
    text = '',
  ): PolicyElement => ({ name, line: element.line, attributes, children, text });
  const audiences = [
    ...(r.children('audiences')[0]?.children.map((c) => c.text) ?? []),
    ...backendIds,
    ...backendIds.map((id) => `api://${id}`),
  ];
  const attributes: Record<string, string> = { 'output-token-variable-name': variable };
  for (const name of [
    'failed-validation-httpcode',
    'failed-validation-error-message',
    'query-parameter-name',
    'token-value',
  ]) {
    const v = r.optional(name);
    if (v !== undefined) attributes[name] = v;
  }
  if (attributes['query-parameter-name'] === undefined && attributes['token-value'] === undefined)
    attributes['header-name'] = r.optional('header-name') ?? 'Authorization';
  const audiencesElement = r.children('audiences')[0];
  if (audiencesElement) {
    const a = new ElementReader(deps.file, audiencesElement);
    a.allowAttributes([]);
    a.noText();
    a.allowChildren(['audience']);
  }
  const jwt = compileValidateJwt(
    at('validate-jwt', attributes, [
      at('openid-config', { url: `${instance}/${tenantId}/v2.0/.well-known/openid-configuration` }),
      at('issuers', {}, [
        at('issuer', {}, [], `${instance}/${tenantId}/v2.0`),
        at('issuer', {}, [], `https://sts.windows.net/${tenantId}/`),
      ]),
      ...(audiences.length
        ? [
            at(
              'audiences',
              {},
              audiences.map((a) => at('audience', {}, [], a)),
            ),
          ]
        : []),
      ...r.children('required-claims'),
    ]),
    deps,
  );
  const status = r.integer('failed-validation-httpcode', 401, 100, 599);
  const customMessage = r.optional('failed-validation-error-message');
  const output = r.optional('output-token-variable-name')?.trim();

  return {
    name: 'validate-azure-ad-token',
    line: element.line,
    async execute(ctx: PolicyContext): Promise<void> {
      try {
        await jwt.execute(ctx);
      } catch (err) {
        if (err instanceof ApimError)
          throw new ApimError(err.statusCode, err.message, 'validate-azure-ad-token', err.reason);
        throw err;
      }
      const validated = ctx.variables.get(variable) as ValidatedJwt;
      ctx.variables.delete(variable);
      if (clientIds.length) {
        const client = validated.claims['azp'] ?? validated.claims['appid'];
        if (typeof client !== 'string' || !clientIds.includes(client)) {
          throw new ApimError(
            status,
            customMessage ?? 'Client application is not allowed. Access denied.',
            'validate-azure-ad-token',
            'TokenClaimValueNotAllowed',
          );
        }
      }
      if (output) ctx.variables.set(output, validated);
    },
  };
}
