/**
 * `token get` and `token decode`, and the session `token get` and `call` share: the token
 * pipeline of @certflow/partner-client, reporting assertions and tokens as the CLI prints them.
 */
import {
  createTokenPipeline,
  EXPIRY_WARNING_DAYS,
  readTokenConfig,
  summarize,
  type AcquiredToken,
  type DecodedAssertion,
  type PartnerCredential,
  type TokenConfig,
  type TokenPipeline,
} from '@certflow/partner-client';
import type { Clock } from '@certflow/clock';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { command, decodeClaims, JSON_OPTION, logTo, UsageError, type CliIo, type Emit } from './command';

function warnIfExpiringSoon(
  io: CliIo,
  credential: PartnerCredential,
  now: Date,
  warningDays = EXPIRY_WARNING_DAYS,
): void {
  const summary = summarize(credential, now);
  if (summary.status === 'valid' && summary.daysUntilExpiry < warningDays) {
    io.stderr(
      `partner-worker: warning: the certificate expires in ${summary.daysUntilExpiry} days (${summary.notAfter}); rotate it soon`,
    );
  }
}

/** One CLI session: the token pipeline, printing each assertion sent and each token used. */
export function openSession(
  io: CliIo,
  config: TokenConfig,
  json: boolean,
  emit: Emit,
  clock: Clock,
): TokenPipeline {
  const onAssertion = (a: DecodedAssertion) => {
    if (json) emit({ event: 'assertion', header: a.header, claims: a.claims });
    else
      io.stdout(
        `client assertion sent: header ${JSON.stringify(a.header)} claims ${JSON.stringify(a.claims)} (signature not shown)`,
      );
  };
  const onToken = (token: AcquiredToken) => {
    const claims = decodeClaims(token.accessToken);
    if (json)
      emit({ event: 'token', source: token.source, claims, expiresOn: token.expiresOn.toISOString() });
    else io.stdout(`token from ${token.source}, expires ${token.expiresOn.toISOString()}`);
  };
  const pipeline = createTokenPipeline({ config, log: logTo(io), clock, hooks: { onAssertion, onToken } });
  warnIfExpiringSoon(io, pipeline.credential, clock.now(), config.expiryWarningDays);
  return pipeline;
}

export const tokenGet = command({
  name: 'token get',
  usage: `  token get [--json]  get an access token and print its decoded claims (never the token)`,
  options: { ...JSON_OPTION },
  async run({ io, values, emit, clock }) {
    const session = openSession(io, readTokenConfig(io.env, io.cwd), values.json, emit, clock);
    try {
      const token = await session.tokens.getToken();
      if (!values.json) io.stdout(`claims:\n${JSON.stringify(decodeClaims(token.accessToken), null, 2)}`);
      return 0;
    } finally {
      session.close();
    }
  },
});

export const tokenDecode = command({
  name: 'token decode',
  usage: `  token decode [TOKEN] [--json]
                      decode a JWT given as argument or on stdin: header and claims, NOT verified`,
  help: `Usage: partner-worker token decode [TOKEN] [--json]

Decodes a JWT given as the argument or on stdin and prints its header and claims (times shown as
dates too). Nothing is verified: neither the signature nor the issuer, audience or lifetime, so the
output must not be trusted as proof of anything. The signature is never printed.
With --json: {"event":"decoded","verified":false,"header":{…},"claims":{…},"expired":bool}.`,
  options: { ...JSON_OPTION },
  args: 1,
  async run({ io, values, args, emit, clock }) {
    let token = args[0];
    if (token === undefined) {
      if (!io.readStdin) throw new UsageError('token decode needs a token as argument or on stdin');
      token = await io.readStdin();
    }
    token = token.trim().replace(/^Bearer\s+/i, '');
    if (token === '') throw new UsageError('token decode needs a token as argument or on stdin');
    const parts = token.split('.');
    if (parts.length === 5)
      throw new Error('this is an encrypted token (JWE): it cannot be decoded without the key');
    if (parts.length !== 3)
      throw new Error(`not a JWT: expected three dot-separated parts, got ${parts.length}`);
    let header: Record<string, unknown>;
    let claims: Record<string, unknown>;
    try {
      header = decodeProtectedHeader(token) as Record<string, unknown>;
      claims = decodeJwt(token) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`not a JWT: ${(err as Error).message}`);
    }
    const exp = typeof claims.exp === 'number' ? claims.exp : undefined;
    const expired = exp !== undefined ? exp * 1000 <= clock.nowMs() : undefined;
    if (values.json) {
      emit({
        event: 'decoded',
        verified: false,
        header,
        claims,
        ...(expired !== undefined ? { expired } : {}),
      });
      return 0;
    }
    const times = ['iat', 'nbf', 'exp']
      .filter((c) => typeof claims[c] === 'number')
      .map((c) => `  ${c.padEnd(4)} ${new Date((claims[c] as number) * 1000).toISOString()}`);
    io.stdout(
      [
        'NOT VERIFIED: decoded only; the signature, issuer, audience and lifetime were not checked.',
        `header:\n${JSON.stringify(header, null, 2)}`,
        `claims:\n${JSON.stringify(claims, null, 2)}`,
        ...(times.length ? ['times (UTC):', ...times] : []),
        ...(expired ? ['this token has expired'] : []),
      ].join('\n'),
    );
    return 0;
  },
});
