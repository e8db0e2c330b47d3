/**
 * Reading settings from environment variables: every bad value is a {@link ConfigError} that
 * names the variable, thrown at start-up before anything runs.
 */
export type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    /** The environment variable at fault. */
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
  }
}

/** The trimmed value; an unset or empty variable counts as missing. */
export function envValue(env: Env, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined) return undefined;
  const trimmed = raw.trim();
  return trimmed === '' ? undefined : trimmed;
}

/** An absolute URL with one of `protocols`, no query, fragment or credentials. */
export function envUrl(name: string, v: string, protocols: string[]): URL {
  let parsed: URL;
  try {
    parsed = new URL(v);
  } catch {
    throw new ConfigError(name, `must be an absolute URL, got "${v}"`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(
      name,
      `must use ${protocols.map((p) => p.replace(':', '')).join(' or ')}, got "${v}"`,
    );
  }
  // The raw text: a bare `?` or `#` leaves search and hash empty, a bare `@` the username.
  if (/[?#]/.test(v)) throw new ConfigError(name, `must not have a query or fragment, got "${v}"`);
  if (parsed.username || parsed.password || authorityOf(v).includes('@'))
    throw new ConfigError(name, 'must not contain credentials');
  return parsed;
}

/** The authority as written: after `scheme:` and its slashes, up to the path. */
function authorityOf(v: string): string {
  return v.replace(/^[a-z][a-z\d+.-]*:[/\\]*/i, '').split(/[/\\]/, 1)[0] ?? '';
}
