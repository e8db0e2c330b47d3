/**
 * The "Certificates & secrets" admin page at `/portal/`: static files from `portal/` (no
 * framework, no third-party code) that call the same Graph-shaped API as everything else.
 * Served with a strict Content-Security-Policy; Graph and admin requests from another origin
 * are refused (see `isCrossOrigin`).
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';

export const PORTAL_PREFIX = '/portal';

const ASSETS: Record<string, string> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/app.js': 'app.js',
  '/sign-ins.js': 'sign-ins.js',
  '/app.css': 'app.css',
};
const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  json: 'application/json; charset=utf-8',
};
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

// Read once: the page is small, and serving must not touch the disk per request.
const portalDir = join(__dirname, '..', 'portal');
const files = new Map(Object.values(ASSETS).map((name) => [name, readFileSync(join(portalDir, name))]));

export function isPortalPath(pathname: string): boolean {
  return pathname === PORTAL_PREFIX || pathname.startsWith(`${PORTAL_PREFIX}/`);
}

export function servePortal(
  req: IncomingMessage,
  res: ServerResponse,
  pathname: string,
  config: { tenantId: string; adminAppId: string },
): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET', ...SECURITY_HEADERS }).end();
    return;
  }
  if (pathname === PORTAL_PREFIX) {
    res.writeHead(308, { location: `${PORTAL_PREFIX}/`, ...SECURITY_HEADERS }).end();
    return;
  }
  const rest = pathname.slice(PORTAL_PREFIX.length);
  if (rest === '/config.json') {
    // Nothing secret: where to sign in, and which registration is the emulator's own (read-only here).
    const body = JSON.stringify({ ...config, tokenPath: `/${config.tenantId}/oauth2/v2.0/token` });
    res.writeHead(200, { 'content-type': TYPES.json, ...SECURITY_HEADERS }).end(body);
    return;
  }
  const name = ASSETS[rest];
  if (!name) {
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS }).end('Not found');
    return;
  }
  const type = TYPES[name.slice(name.lastIndexOf('.') + 1)]!;
  res
    .writeHead(200, { 'content-type': type, ...SECURITY_HEADERS })
    .end(req.method === 'HEAD' ? undefined : files.get(name));
}

/**
 * True when a browser sent the request from a page of another origin. The admin API takes a
 * bearer token (no cookies), so this is defence in depth: another site's script must not be
 * able to drive it even with a token it somehow obtained.
 */
export function isCrossOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return false; // not a browser's cross-origin request (curl, MSAL, Graph SDKs)
  return origin !== `https://${req.headers.host ?? ''}`;
}
