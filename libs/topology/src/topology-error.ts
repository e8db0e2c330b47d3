/**
 * Every problem found in a topology file, each `<path in file>: <message>`, e.g.
 * `partners[1].roles.orders[0]: no role "Orders.Wrte" on api "orders" (did you mean "Orders.Write"?)`.
 * The message is `<file>: N problem(s)` followed by one indented line per problem.
 */
export class TopologyError extends Error {
  override readonly name = 'TopologyError';

  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
    super(`${file}: ${count}\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}
