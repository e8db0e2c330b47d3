/**
 * APIM subscription keys, opt-in for the API (APIM's "Subscription required"): the key comes in
 * the `Ocp-Apim-Subscription-Key` header or the `subscription-key` query parameter and must be
 * a key (primary or secondary) of a configured subscription. Checked before any policy; the
 * failures are APIM's own 401 messages. A valid key sets `context.Subscription.Id`.
 *
 * Keys are compared by their SHA-256, so the lookup does not leak key prefixes through timing.
 * The header is removed before the request is forwarded (the backend never needs the key);
 * the access log never contains it (query strings are not logged).
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export interface SubscriptionKeyOptions {
  /** true: every request needs a valid key. false: a valid key only identifies the subscription. */
  required: boolean;
  subscriptions: ReadonlyArray<{ id: string; keys: readonly string[] }>;
  /** Default `Ocp-Apim-Subscription-Key`. */
  headerName?: string;
  /** Default `subscription-key`. */
  queryParameterName?: string;
}

export const MISSING_KEY_MESSAGE =
  'Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.';
export const INVALID_KEY_MESSAGE =
  'Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.';

export type SubscriptionCheck =
  | { ok: true; subscriptionId: string | undefined }
  | { ok: false; message: string; reason: 'SubscriptionKeyNotFound' | 'SubscriptionKeyInvalid' };

const digest = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex');

export class SubscriptionKeys {
  readonly headerName: string;
  readonly queryParameterName: string;
  private readonly byDigest = new Map<string, string>();

  constructor(private readonly opts: SubscriptionKeyOptions) {
    this.headerName = (opts.headerName ?? 'Ocp-Apim-Subscription-Key').toLowerCase();
    this.queryParameterName = opts.queryParameterName ?? 'subscription-key';
    for (const s of opts.subscriptions) {
      if (!s.id || s.keys.length === 0)
        throw new TypeError('subscriptionKeys: every subscription needs an id and at least one key');
      for (const key of s.keys) {
        if (key.length < 8)
          throw new TypeError(
            `subscriptionKeys: the keys of subscription '${s.id}' must be at least 8 characters`,
          );
        const d = digest(key);
        if (this.byDigest.has(d))
          throw new TypeError(`subscriptionKeys: a key of subscription '${s.id}' is used twice`);
        this.byDigest.set(d, s.id);
      }
    }
  }

  check(headers: IncomingHttpHeaders, query: URLSearchParams): SubscriptionCheck {
    const header = headers[this.headerName];
    const key =
      (Array.isArray(header) ? header[0] : header) ?? query.get(this.queryParameterName) ?? undefined;
    if (key === undefined || key === '') {
      return this.opts.required
        ? { ok: false, message: MISSING_KEY_MESSAGE, reason: 'SubscriptionKeyNotFound' }
        : { ok: true, subscriptionId: undefined };
    }
    const id = this.byDigest.get(digest(key));
    if (id === undefined)
      return { ok: false, message: INVALID_KEY_MESSAGE, reason: 'SubscriptionKeyInvalid' };
    return { ok: true, subscriptionId: id };
  }
}
