/**
 * Which operation policy applies to a request: APIM's URL templates (`/orders/{id}`: a
 * `{name}` stands for one path segment, or part of one) and the operation's method (`*`: any).
 * The gateway compiles each template once; `findOperation` is for callers that ask once.
 */
export function templatePattern(template: string): RegExp {
  if (!template.startsWith('/')) throw new TypeError(`operation urlTemplate '${template}' must start with /`);
  const parts = template
    .split(/(\{[^{}/]+\})/)
    .map((part) => (/^\{[^{}/]+\}$/.test(part) ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  return new RegExp(`^${parts.join('')}/?$`);
}

/** Whether an operation (method upper-case or `*`, compiled template) applies to `method` and `path`. */
export const operationApplies = (
  op: { method: string; pattern: RegExp },
  method: string,
  path: string,
): boolean => (op.method === '*' || op.method === method) && op.pattern.test(path);

/** The first operation of `operations` that applies to the request, as the gateway chooses it. */
export function findOperation<T extends { method: string; urlTemplate: string }>(
  operations: readonly T[],
  method: string,
  path: string,
): T | undefined {
  return operations.find((op) =>
    operationApplies(
      { method: op.method.toUpperCase(), pattern: templatePattern(op.urlTemplate) },
      method,
      path,
    ),
  );
}
