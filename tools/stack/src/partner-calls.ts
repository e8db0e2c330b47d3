/**
 * Steps 5 to 8 for each partner: it calls the served API through the gateway with the partner
 * worker (`GET /orders` twice, narrated, the second from its token cache; then `POST /orders`),
 * and each answer must be the one the topology grants (access-check.ts), else the start fails
 * naming the partner, the call, what was expected and what came.
 */
import { findOperation } from '@certflow/local-gateway';
import type { Topology, TopologyApi } from '@certflow/topology';
import {
  ACCESS_CALLS,
  answersAsExpected,
  callArguments,
  describeExpectation,
  expectedAnswer,
  requiredRolesFromOpenApi,
  unreachableOperations,
  type AccessCall,
} from './access-check';
import { partnerCallNarrator, type StepReport } from './call-narration';
import { runJsonCommand } from './child-service';
import { servedApi, stackPartnerEnvironment, type StackFile } from './stack-file';
import { StepFailedError, step } from './step';
import { appEntryPoint } from './workspace';

/**
 * Makes every partner's calls; resolves with the time from `began` to the first 2xx answer and
 * the partners whose `GET /orders` answered 2xx (the ones to suggest trying).
 */
export async function provePartnerAccess(opts: {
  file: StackFile;
  topology: Topology;
  stateDir: string;
  report: (step: StepReport) => void;
  began: number;
}): Promise<{ firstCallMs: number; readers: string[] }> {
  const { file, topology, report } = opts;
  const api = servedApi(file);
  const required = await step("reading the API's OpenAPI document (x-app-roles)", () =>
    requiredRolesFromOpenApi(api.url),
  );
  const unreachable = unreachableOperations(topology.apis[0]!, required);
  if (unreachable.length > 0)
    report({
      step: undefined,
      title: 'Warning: operations no partner can reach',
      where: `${api.name} API's x-app-roles (/docs-json) and the app roles of the topology`,
      details: unreachable,
    });
  const worker = appEntryPoint('partner-worker');
  let firstCallMs = 0;
  const readers: string[] = [];
  for (const partner of topology.partners) {
    const name = `steps 5–8 (partner ${partner.name})`;
    const env = { ...process.env, ...stackPartnerEnvironment(file, partner.name) };
    const answers: [string, string][] = [];
    for (const [i, call] of ACCESS_CALLS.entries()) {
      const expected = expectedAnswer(partner, api.name, required.of(call));
      const statuses: number[] = [];
      const onStatus = (status: number): void => {
        statuses.push(status);
        if (!firstCallMs && status >= 200 && status < 300) firstCallMs = performance.now() - opts.began;
      };
      // The first call (GET /orders) is narrated as steps 5–8, and repeated once from the token cache.
      const onEvent =
        i === 0
          ? partnerCallNarrator(
              partner.name,
              file.gateway.url,
              policiesFor(topology.apis[0]!, call),
              opts.stateDir,
              report,
              onStatus,
            )
          : (e: Record<string, unknown>) => e.event === 'response' && onStatus(Number(e.status));
      const run = await runJsonCommand(
        worker,
        callArguments(call, i === 0 && expected.allowed ? ['--times', '2'] : []),
        env,
        onEvent,
      );
      const got = statuses[0];
      if (got === undefined)
        throw new StepFailedError(
          name,
          `${describe(call)}: the partner worker gave no answer\n${run.output}`,
        );
      if (!statuses.every((s) => answersAsExpected(expected, s)))
        throw new StepFailedError(
          name,
          `partner ${partner.name}, ${describe(call)}: expected ${describeExpectation(expected)} (${expected.reason}), got ${statuses.join(', ')}`,
        );
      answers.push([describe(call), `${got} as expected (${expected.reason})`]);
      if (i === 0 && expected.allowed) readers.push(partner.name);
    }
    report({
      step: undefined,
      partner: partner.name,
      title: 'Exactly the access the topology grants',
      where: `${api.name} API's x-app-roles (/docs-json) and the partner's roles in the topology`,
      details: answers,
    });
  }
  return { firstCallMs, readers };
}

const describe = (call: AccessCall): string => `${call.method} ${call.path}`;

/** The policy files the gateway runs for `call`: the API's, then that of the operation the gateway picks. */
function policiesFor(api: TopologyApi, call: AccessCall): string[] {
  const operation = findOperation(api.operations, call.method, call.path);
  return [api.policy, ...(operation ? [operation.policy] : [])];
}
