/**
 * The token endpoint's form body. Like Entra, only `application/x-www-form-urlencoded`
 * bodies are read: any other body simply has no parameters (so the first required one is
 * reported missing). Parsing never throws: bad percent-encodings stay literal, invalid UTF-8
 * becomes U+FFFD, and both then fail validation as ordinary wrong values.
 */
import { entraErrors } from './entra-errors';

export class TokenForm {
  private constructor(private readonly params: URLSearchParams) {}

  static parse(mediaType: string, body: Buffer): TokenForm {
    if (mediaType !== 'application/x-www-form-urlencoded') return new TokenForm(new URLSearchParams());
    return new TokenForm(new URLSearchParams(body.toString('utf8')));
  }

  /** The single value of a parameter; empty values count as absent, repeated ones are refused. */
  get(name: string): string | undefined {
    const values = this.params.getAll(name);
    if (values.length > 1)
      throw entraErrors.malformedRequest(`The parameter '${name}' appears more than once.`);
    const value = values[0];
    return value === undefined || value === '' ? undefined : value;
  }

  require(name: string): string {
    const value = this.get(name);
    if (value === undefined) throw entraErrors.missingParameter(name);
    return value;
  }
}
