/**
 * The Application Gateway part of mTLS: the TLS server asks for a client certificate, checks it
 * against the configured trusted client CAs (PEM), and forwards it to the APIM stage the way an
 * Application Gateway rewrite rule does with its server variables:
 *
 *   X-Client-Cert               {var_client_certificate}              PEM, URL-encoded (one header line)
 *   X-Client-Cert-Verification  {var_client_certificate_verification} SUCCESS | FAILED:<reason> | NONE
 *   X-Client-Cert-Fingerprint   {var_client_certificate_fingerprint}  SHA-1, lower-case hex
 *   X-Client-Cert-Subject       {var_client_certificate_subject}      RFC 2253 DN, e.g. CN=partner,O=Contoso
 *   X-Client-Cert-Issuer        {var_client_certificate_issuer}
 *   X-Client-Cert-Serial        {var_client_certificate_serial}
 *
 * Header names are a rewrite rule's choice in Azure; these are certflow's. A client's own
 * headers with these names are always removed (also without mTLS), never trusted.
 *
 * Modes: `strict` (default) answers 400 before any policy when no certificate or one that fails
 * verification arrives (Application Gateway's strict mTLS); `passthrough` forwards whatever came
 * (verification result included) and leaves the decision to `validate-client-certificate`.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { ClientCertificateInfo } from './policy-context';

export interface ClientCertificateOptions {
  /** Trusted client CA certificates (PEM, one or more; the chain must include the root). */
  trustedCaPem: string;
  /** `strict` (default): no or invalid certificate → 400. `passthrough`: forward, APIM decides. */
  mode?: 'strict' | 'passthrough';
}

export const CLIENT_CERT_HEADERS = {
  certificate: 'x-client-cert',
  verification: 'x-client-cert-verification',
  fingerprint: 'x-client-cert-fingerprint',
  subject: 'x-client-cert-subject',
  issuer: 'x-client-cert-issuer',
  serial: 'x-client-cert-serial',
} as const;

/** Headers only the gateway sets; a client's own values are removed. */
export const GATEWAY_ONLY_HEADERS = new Set<string>([
  ...Object.values(CLIENT_CERT_HEADERS),
  'x-appgw-trace-id',
  'x-original-url',
]);

export interface PeerCertificate extends ClientCertificateInfo {
  x509: X509Certificate;
  /** `SUCCESS`, `FAILED:<reason>` (Application Gateway's client_certificate_verification). */
  verification: string;
}

/** The client certificate of the request's TLS connection, or undefined when none was sent. */
export function peerCertificateOf(req: IncomingMessage): PeerCertificate | undefined {
  const socket = req.socket as TLSSocket;
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  const peer = socket.getPeerCertificate(true) as DetailedPeerCertificate | Record<string, never>;
  if (!peer || !('raw' in peer) || !peer.raw) return undefined;
  const x509 = new X509Certificate(peer.raw);
  const issuerCert =
    peer.issuerCertificate && peer.issuerCertificate !== peer ? peer.issuerCertificate : undefined;
  const trusted = socket.authorized;
  const reason = socket.authorizationError ? String(socket.authorizationError) : 'UNKNOWN';
  return {
    x509,
    verification: trusted ? 'SUCCESS' : `FAILED:${reason}`,
    thumbprint: x509.fingerprint.replace(/:/g, '').toUpperCase(),
    subject: dotNetName(x509.subject),
    issuer: dotNetName(x509.issuer),
    issuerThumbprint: issuerCert?.raw
      ? createHash('sha1').update(issuerCert.raw).digest('hex').toUpperCase()
      : undefined,
    trusted,
    serialNumber: x509.serialNumber.toUpperCase(),
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
    dnsNames: (x509.subjectAltName ?? '')
      .split(', ')
      .filter((n) => n.startsWith('DNS:'))
      .map((n) => n.slice(4)),
  };
}

/** Node gives `CN=a\nO=b` (most significant first); .NET and RFC 2253 list the most specific first. */
function rdns(name: string): string[] {
  return name.split('\n').filter(Boolean).reverse();
}
function dotNetName(name: string): string {
  return rdns(name).join(', ');
}
function rfc2253(name: string): string {
  return rdns(name).join(',');
}

/** The rewrite-rule headers for the backend (APIM stage). */
export function clientCertificateHeaders(peer: PeerCertificate | undefined): Record<string, string> {
  if (!peer) return { [CLIENT_CERT_HEADERS.verification]: 'NONE' };
  return {
    [CLIENT_CERT_HEADERS.certificate]: encodeURIComponent(peer.x509.toString()),
    [CLIENT_CERT_HEADERS.verification]: peer.verification,
    [CLIENT_CERT_HEADERS.fingerprint]: peer.thumbprint.toLowerCase(),
    [CLIENT_CERT_HEADERS.subject]: rfc2253(peer.x509.subject),
    [CLIENT_CERT_HEADERS.issuer]: rfc2253(peer.x509.issuer),
    [CLIENT_CERT_HEADERS.serial]: peer.x509.serialNumber.toUpperCase(),
  };
}
