/** A positive integer setting of a bench: `value` as given (undefined: `fallback`); `what` names it in the error. */
export function positiveInteger(value: string | undefined, what: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new Error(`${what} must be a positive integer, got '${value}'`);
  return n;
}

/** A positive integer from the environment variable `name`. */
export const envInteger = (name: string, fallback: number): number =>
  positiveInteger(process.env[name], name, fallback);
