/**
 * `<return-response>` with `<set-status code reason>`, `<set-header>` and `<set-body>` (literal
 * text): stops the pipeline and answers the caller; the backend is not called and, like APIM,
 * the outbound section does not run. `response-variable-name` is refused for now.
 */
import { applyHeaderChange, compileHeaderChange, HeaderChange } from './set-header-policy';
import type { PolicyContext, PolicyStatement } from './policy-context';
import { ElementReader, PolicyElement } from './policy-xml';

export function compileReturnResponse(file: string, element: PolicyElement): PolicyStatement {
  const r = new ElementReader(file, element);
  r.allowAttributes(['id'], ['response-variable-name']);
  r.noText();
  r.allowChildren(['set-status', 'set-header', 'set-body'], [], ['set-status', 'set-body']);
  let statusCode = 200;
  let reason: string | undefined;
  let body: string | undefined;
  const headerChanges: HeaderChange[] = [];
  for (const child of element.children) {
    const c = new ElementReader(file, child);
    if (child.name === 'set-status') {
      c.allowAttributes(['code', 'reason']);
      c.noChildren();
      c.noText();
      statusCode = c.integer('code', 200, 100, 599);
      reason = c.optional('reason');
      if (reason !== undefined && /[\r\n]/.test(reason))
        throw c.error('attribute reason must not contain line breaks');
    } else if (child.name === 'set-header') {
      headerChanges.push(compileHeaderChange(file, child));
    } else {
      c.allowAttributes([], ['template', 'xsi-nil', 'parse-date']);
      c.noChildren();
      body = child.text;
    }
  }
  return {
    name: 'return-response',
    line: element.line,
    execute(ctx: PolicyContext): void {
      const headers = {};
      for (const change of headerChanges) applyHeaderChange(headers, change, ctx, 'return-response');
      ctx.response = {
        statusCode,
        ...(reason === undefined ? {} : { reason }),
        headers,
        ...(body === undefined ? {} : { body }),
      };
      ctx.returned = true;
    },
  };
}
