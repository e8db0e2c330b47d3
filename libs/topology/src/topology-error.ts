/**
 * Every problem found in a topology file, each `<path in file>: <message>`, e.g.
 * `partners[1].roles.orders[0]: no role "Orders.Wrte" on api "orders" (did you mean "Orders.Write"?)`.
 * The message is `<file>: N problem(s)` followed by one indented line per problem. Values from
 * the file are quoted where the problems are written; any control or bidirectional character
 * left is escaped here, and at most 50 problems are listed (then how many more there are).
 */
import { printable } from './quote';

const LISTED = 50;

export class TopologyError extends Error {
  override readonly name = 'TopologyError';
  readonly problems: string[];

  /** `unlisted`: problems found beyond those given (counted, not described). */
  constructor(
    readonly file: string,
    problems: string[],
    unlisted = 0,
  ) {
    const more = problems.length - LISTED + unlisted;
    const listed = [
      ...problems.slice(0, LISTED).map(printable),
      ...(more > 0 ? [`… and ${more} more ${more === 1 ? 'problem' : 'problems'}`] : []),
    ];
    const total = problems.length + unlisted;
    super(
      `${printable(file)}: ${total === 1 ? '1 problem' : `${total} problems`}\n${listed.map((p) => `  ${p}`).join('\n')}`,
    );
    this.problems = listed;
  }
}
