/**
 * Steps 5 to 8 of `npm start`'s narration, and the cached second call, from the partner
 * worker's JSON events (`call --json`).
 */
import { isAbsolute, join, relative, sep } from 'node:path';
import { shownPath } from './workspace';

/** Files in the state directory holding the gateway's access log and the API's JSON log. */
export const GATEWAY_ACCESS_LOG = 'gateway-access.log';
export const API_LOG = 'api.log';

export interface StepReport {
  /** The article's step (1–8), or undefined for what follows them (the cached second call). */
  step: number | undefined;
  /** The partner (topology name) the step is about, when it is about one. */
  partner?: string;
  title: string;
  where: string;
  details: [string, string][];
  /** Text shown as it is after the details (step 1: the plan of what reconcile changed). */
  lines?: string[];
}

/**
 * Narrates partner `partner`'s `call /orders --times 2 --json`; `onResponse` gets each status.
 * `policies`: the policy files the gateway runs for that call (the API's, then the operation's).
 */
export function partnerCallNarrator(
  partner: string,
  gatewayUrl: string,
  policies: string[],
  stateDir: string,
  reportStep: (step: StepReport) => void,
  onResponse: (status: number) => void,
): (event: Record<string, unknown>) => void {
  const report = (step: StepReport): void => reportStep({ ...step, partner });
  let responses = 0;
  return (event) => {
    if (event.event === 'assertion') {
      report({
        step: 5,
        title: 'The partner signs a JWT client assertion with its private key',
        where: 'libs/partner-client (CertificateTokenClient) through @azure/msal-node',
        details: [
          ['header', JSON.stringify(event.header)],
          ['claims', JSON.stringify(event.claims)],
          ['signature', '(not shown)'],
        ],
      });
    } else if (event.event === 'token' && event.source !== 'cache') {
      report({
        step: 6,
        title: 'It exchanges the assertion for a short-lived access token',
        where: 'tools/entra-emulator POST /{tenant}/oauth2/v2.0/token',
        details: [
          ['expires', String(event.expiresOn)],
          ['claims', JSON.stringify(event.claims)],
          ['token', '(not shown)'],
        ],
      });
    } else if (event.event === 'token') {
      report({
        step: undefined,
        title: "Second call: the token comes from the partner's cache, no request to Entra ID",
        where: "libs/partner-client (certflow's TokenCache in front of MSAL)",
        details: [
          ['source', 'cache'],
          ['expires', String(event.expiresOn)],
        ],
      });
    } else if (event.event === 'response') {
      responses += 1;
      onResponse(Number(event.status));
      const status = String(event.status);
      if (responses > 1) {
        report({
          step: undefined,
          title: 'Second call answered',
          where: 'tools/local-gateway → apps/api',
          details: [['status', status]],
        });
        return;
      }
      const body = (event.body ?? {}) as { orders?: unknown[]; caller?: Record<string, unknown> };
      report({
        step: 7,
        title: 'It calls the API with Authorization: Bearer …',
        where: 'apps/partner-worker → tools/local-gateway',
        details: [
          ['request', `GET ${gatewayUrl}/orders`],
          ...(typeof event.traceId === 'string'
            ? [['traceId', `${event.traceId}  (grep it in ${whereToGrep(stateDir)})`] as [string, string]]
            : []),
        ],
      });
      report({
        step: 8,
        title:
          'The gateway validates the token (APIM validate-jwt); the API validates it again and checks the role',
        where: `${policies.map(shownPath).join(' and ')} in tools/local-gateway, then apps/api`,
        details: [
          ['status', status],
          ['API saw', JSON.stringify(body.caller)],
          [
            'answer',
            Array.isArray(body.orders) ? `${body.orders.length} orders` : JSON.stringify(event.body),
          ],
        ],
      });
    }
  };
}

/** The two logs that carry a call's trace id, relative to the working directory when inside it. */
function whereToGrep(stateDir: string): string {
  const fromHere = relative(process.cwd(), stateDir);
  const dir =
    fromHere === '' ? '.' : fromHere.split(sep)[0] === '..' || isAbsolute(fromHere) ? stateDir : fromHere;
  return `${join(dir, GATEWAY_ACCESS_LOG)} and ${join(dir, API_LOG)}`;
}
