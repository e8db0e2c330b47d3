/**
 * What policies see and change while a request goes through the gateway: APIM's `context`
 * reduced to what the supported policies need.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { ApimError } from './apim-errors';

export type PolicySection = 'inbound' | 'backend' | 'outbound' | 'on-error';

export interface GatewayRequest {
  readonly method: string;
  /** Path and query as received, e.g. `/orders?x=1`. */
  readonly url: string;
  readonly query: URLSearchParams;
  /** Headers towards the backend (lower-case names); `set-header` in `inbound` changes them. */
  readonly headers: OutgoingHttpHeaders;
  readonly clientIp: string;
  /** The client certificate the TLS connection presented (mTLS), if any. */
  readonly clientCertificate?: ClientCertificateInfo;
}

export interface ClientCertificateInfo {
  /** SHA-1 thumbprint, upper-case hex without separators (as .NET's X509Certificate2.Thumbprint). */
  readonly thumbprint: string;
  /** .NET-style distinguished names, most specific first: `CN=partner, O=Contoso`. */
  readonly subject: string;
  readonly issuer: string;
  /** Upper-case hex. */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The chain verified against the gateway's trusted client CAs. */
  readonly trusted: boolean;
  /** Upper-case hex SHA-1 of the issuing certificate, when the chain was verified. */
  readonly issuerThumbprint: string | undefined;
  /** DNS names of the subjectAltName extension. */
  readonly dnsNames: readonly string[];
}

export interface GatewayResponse {
  statusCode: number;
  reason?: string;
  /** Lower-case names; `set-header` in `outbound`/`on-error` changes them. */
  headers: OutgoingHttpHeaders;
  /** A body set by a policy; when undefined the backend's body (if any) is streamed. */
  body?: string;
}

export interface PolicyContext {
  section: PolicySection;
  readonly request: GatewayRequest;
  response: GatewayResponse | undefined;
  readonly variables: Map<string, unknown>;
  lastError: ApimError | undefined;
  /** Set by `set-backend-service`: where the request is forwarded instead of the gateway's backendUrl. */
  backendUrl?: URL;
  /** The APIM subscription the request was made with, if any. */
  subscription?: { readonly id: string };
  /** Headers policies add to whatever response the caller gets (e.g. rate-limit-by-key's remaining-calls header). */
  readonly responseHeaders?: Record<string, string>;
  /** Work to do once the response status is known (e.g. a rate-limit increment-condition on context.Response). */
  readonly afterResponse?: Array<(ctx: PolicyContext) => Promise<void> | void>;
  /** Set by `return-response`: stop the pipeline and answer with `response`. */
  returned: boolean;
  /** Current time in ms (injectable for tests). */
  readonly now: () => number;
}

/** One compiled policy statement (`validate-jwt`, `set-header`, …). */
export interface PolicyStatement {
  readonly name: string;
  readonly line: number;
  /** Runs the statement; failures throw `ApimError`, which sends the pipeline to `on-error`. */
  execute(ctx: PolicyContext): Promise<void> | void;
}
