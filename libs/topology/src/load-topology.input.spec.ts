/**
 * loadTopology against hostile or broken input: repeated keys, deep nesting, bytes that are not
 * UTF-8, policy files that are not APIM policies, control characters, and a symbolic link.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '@certflow/testing';
import { loadTopology, parseTopology, TopologyError } from './index';
import { topologyErrorOf } from './load-topology.test-helpers';

function problemsOf(run: () => unknown): string[] {
  return topologyErrorOf(run).problems;
}

describe('loadTopology refuses', () => {
  const dir = tempDir('topology-input-');
  const file = join(dir.path, 'certflow.topology.json');
  writeFileSync(
    join(dir.path, 'policy.xml'),
    '<?xml version="1.0"?>\n<!-- API -->\n<policies>\n  <inbound />\n</policies>\n',
  );
  afterAll(() => dir.remove());

  const api = (patch: Record<string, unknown> = {}) => ({
    name: 'orders',
    displayName: 'orders API',
    identifierUri: 'api://orders',
    appRoles: [{ value: 'Orders.Read' }],
    policy: 'policy.xml',
    ...patch,
  });
  const text = (data: object) => JSON.stringify(data, null, 2);
  const parse = (data: object) => () => parseTopology(text(data), file);

  it('a key written twice in one object, naming the path and line of the repeat', () => {
    const source = [
      '{',
      `  "apis": ${JSON.stringify([api()])},`,
      '  "partners": [{ "name": "contoso", "displayName": "c", "name": "newco" }],',
      '  "partners": []',
      '}',
    ].join('\n');
    expect(problemsOf(() => parseTopology(source, file))).toEqual([
      'partners[0].name: line 3, column 57: key "name" is repeated in the same object (JSON would keep only the last one); remove one',
      'partners: line 4, column 3: key "partners" is repeated in the same object (JSON would keep only the last one); remove one',
    ]);
  });

  it('invalid JSON nested 200000 deep with a line and column, not a stack overflow', () => {
    writeFileSync(file, '{"apis":' + '['.repeat(200_000));
    expect(problemsOf(() => loadTopology(file))).toEqual([
      'line 1, column 72: nested more than 64 levels deep; a topology file needs far fewer',
    ]);
  });

  it('valid JSON nested deeper than a topology needs, before any check walks it', () => {
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    const source = `{"apis": [${JSON.stringify(api()).slice(0, -1)}, "accessTokenVersion": ${deep}}], "partners": []}`;
    const column = source.indexOf('['.repeat(62)) + 62; // the 62nd '[' is the 65th level
    expect(problemsOf(() => parseTopology(source, file))).toEqual([
      `line 1, column ${column}: nested more than 64 levels deep; a topology file needs far fewer`,
    ]);
    expect(problemsOf(parse({ apis: [api({ accessTokenVersion: [[2]] })], partners: [] }))).toEqual([
      'apis[0].accessTokenVersion: must be one of 1, 2, got an array',
    ]);
  });

  it('a file that is not UTF-8; one byte order mark is allowed, a second is not', () => {
    const data = { apis: [api({ displayName: 'caf\u00e9' })], partners: [] };
    writeFileSync(file, Buffer.from(text(data), 'latin1'));
    expect(problemsOf(() => loadTopology(file))).toEqual([
      'not UTF-8 text: byte 69 (line 5) is 0xe9; save the file as UTF-8',
    ]);
    writeFileSync(file, `\uFEFF${text(data)}`);
    expect(loadTopology(file).topology.apis[0]!.displayName).toBe('caf\u00e9');
    writeFileSync(file, `\uFEFF\uFEFF${text(data)}`);
    expect(problemsOf(() => loadTopology(file))).toEqual([
      'line 1, column 1: invalid JSON: expected a value, found U+FEFF',
    ]);
  });

  it('policy files that are not well-formed XML or not <policies>, at the API or an operation', () => {
    writeFileSync(join(dir.path, 'broken.xml'), '<policies>\n  <inbound>\n</policies>\n');
    writeFileSync(join(dir.path, 'passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
    writeFileSync(join(dir.path, 'root.xml'), '<root>hello</root>');
    writeFileSync(join(dir.path, 'two.xml'), '<policies /><policies />');
    writeFileSync(join(dir.path, 'big.xml'), `<policies>${' '.repeat(256 * 1024)}</policies>`);
    writeFileSync(join(dir.path, 'latin1.xml'), Buffer.from('<policies>\u00e9</policies>', 'latin1'));
    const operation = (policy: string) => ({ method: 'GET', urlTemplate: '/orders', policy });
    const problems = problemsOf(
      parse({
        apis: [
          api({ policy: 'broken.xml', operations: [operation('root.xml')] }),
          api({ name: 'a', identifierUri: 'api://a1', policy: 'passwd', operations: [operation('two.xml')] }),
          api({
            name: 'b',
            identifierUri: 'api://b1',
            policy: 'big.xml',
            operations: [operation('latin1.xml')],
          }),
        ],
        partners: [],
      }),
    );
    expect(problems).toEqual([
      "apis[0].policy: broken.xml: line 3, column 1: not well-formed XML: Expected closing tag 'inbound' (opened in line 2, col 3) instead of closing tag 'policies'.",
      'apis[0].operations[0].policy: root.xml: the root element must be <policies> (an APIM policy document), found <root>',
      "apis[1].policy: passwd: line 1, column 1: not well-formed XML: char 'r' is not expected.",
      'apis[1].operations[0].policy: two.xml: the root element must be <policies> (an APIM policy document), found <policies>, <policies>',
      'apis[2].policy: big.xml: 262165 bytes; a policy file may have at most 262144 bytes',
      'apis[2].operations[0].policy: latin1.xml: not UTF-8 text: byte 10 (line 1) is 0xe9; save the file as UTF-8',
    ]);
  });

  it('control and bidirectional characters in what reaches Graph or the terminal, printed as escapes', () => {
    const problems = problemsOf(
      parse({
        apis: [
          api({
            displayName: 'orders\u202e API',
            identifierUri: 'api://orders\u0000x',
            appRoles: [{ value: 'Orders.Read', displayName: 'R\u0085', description: 'Read\u001b[2K' }],
            operations: [{ method: 'GET', urlTemplate: '/orders\u2066', policy: 'policy.xml' }],
          }),
        ],
        partners: [{ name: 'contoso', displayName: 'c\u0007', certificate: { commonName: 'c\u2069' } }],
      }),
    );
    const control =
      'must not contain control characters (U+0000–U+001F, U+007F–U+009F) or Unicode bidirectional controls (U+202A–U+202E, U+2066–U+2069)';
    expect(problems).toEqual([
      `apis[0].displayName: "orders\\u202e API" ${control}`,
      'apis[0].identifierUri: "api://orders\\u0000x" must be an api:// or https:// URI without spaces, ?, #, control characters, a trailing slash or a trailing /.default (the scope adds it), e.g. api://certflow-orders',
      `apis[0].appRoles[0].displayName: "R\\u0085" ${control}`,
      `apis[0].appRoles[0].description: "Read\\u001b[2K" ${control}`,
      `apis[0].operations[0].urlTemplate: "/orders\\u2066" ${control}`,
      `partners[0].displayName: "c\\u0007" ${control}`,
      `partners[0].certificate.commonName: "c\\u2069" ${control}`,
    ]);
  });

  it('nothing from the file reaches the terminal raw: duplicates, templates, unknown apis, suggestions, XML', () => {
    const esc = '\u001b[2K';
    writeFileSync(join(dir.path, 'evil.xml'), `<policies${esc}EVIL />`);
    let message = '';
    const problems = problemsOf(() => {
      try {
        return parse({
          apis: [
            api({
              name: `orders${esc}`,
              identifierUri: `api://o${esc}`,
              appRoles: [{ value: `R${esc}` }, { value: `R${esc}` }],
              policy: 'evil.xml',
              operations: [{ method: 'GET', urlTemplate: `/a{${esc}`, policy: 'policy.xml' }],
            }),
            api({ name: `orders${esc}`, identifierUri: `api://o${esc}` }),
          ],
          partners: [
            { name: `p${esc}`, displayName: 'c', roles: { [`orders${esc}x`]: ['R'] } },
            { name: `p${esc}`, displayName: 'c' },
          ],
        })();
      } catch (err) {
        message = (err as Error).message;
        throw err;
      }
    });
    // eslint-disable-next-line no-control-regex -- the point
    expect(message).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    expect(problems).toEqual(
      expect.arrayContaining([
        'apis[1].name: duplicate api name "orders\\u001b[2K" (also apis[0].name)',
        'apis[1].identifierUri: identifierUri "api://o\\u001b[2k" is already used by apis[0].identifierUri',
        'apis[0].appRoles[1].value: duplicate role "R\\u001b[2K" (also apis[0].appRoles[0].value)',
        'apis[0].operations[0].urlTemplate: "/a{\\u001b[2K" has unbalanced braces',
        'partners[1].name: duplicate partner name "p\\u001b[2K" (also partners[0].name)',
        'partners[0].roles["orders\\u001b[2Kx"]: no api "orders\\u001b[2Kx" (did you mean "orders\\u001b[2K"?)',
      ]),
    );
    expect(problems.find((p) => p.startsWith('apis[0].policy:'))).toMatch(
      /^apis\[0\]\.policy: evil\.xml: line 1, column \d+: not well-formed XML: .*\\u001b\[2K/,
    );
  });

  it('an identifierUri with a query, a fragment, a space or a trailing /.default', () => {
    for (const uri of [
      'api://inv?x=1',
      'api://inv#f',
      'api://in v',
      'api://inv/.default',
      'https://contoso.com/inv/.DEFAULT',
    ])
      expect(problemsOf(parse({ apis: [api({ identifierUri: uri })], partners: [] }))).toEqual([
        `apis[0].identifierUri: ${JSON.stringify(uri)} must be an api:// or https:// URI without spaces, ?, #, control characters, a trailing slash or a trailing /.default (the scope adds it), e.g. api://certflow-orders`,
      ]);
    for (const uri of ['api://inv/default', 'api://inv/x.default', 'https://contoso.com/inv'])
      expect(
        parse({ apis: [api({ identifierUri: uri })], partners: [] })().topology.apis[0]!.identifierUri,
      ).toBe(uri);
  });

  it('at most 50 problems listed, then how many more: 250000 repeated keys stay small and quick', () => {
    const started = Date.now();
    const source = `{"apis": [], "partners": [], "x": {${'"k": 1,'.repeat(250_000)}"k": 1}}`;
    let err: TopologyError | undefined;
    try {
      parseTopology(source, file);
    } catch (e) {
      err = e as TopologyError;
    }
    expect(err).toBeInstanceOf(TopologyError);
    expect(err!.problems).toHaveLength(51);
    expect(err!.problems[50]).toBe('… and 249950 more problems');
    expect(err!.message.split('\n')[0]).toBe(`${file}: 250000 problems`);
    expect(err!.message.length).toBeLessThan(10_000);
    expect(Date.now() - started).toBeLessThan(5_000);
    const many = problemsOf(
      parse({ apis: [api()], partners: Array.from({ length: 60 }, () => ({ name: 'x', displayName: 'x' })) }),
    );
    expect(many).toHaveLength(51);
    expect(many[50]).toBe('… and 9 more problems');
  });

  it('a role listed twice for a partner, naming the later one as the duplicate', () => {
    expect(
      problemsOf(
        parse({
          apis: [api()],
          partners: [
            { name: 'contoso', displayName: 'c', roles: { orders: ['Orders.Read', 'Orders.Read'] } },
          ],
        }),
      ),
    ).toEqual(['partners[0].roles.orders[1]: duplicate of [0]']);
  });
});

describe('loadTopology through a symbolic link', () => {
  const dir = tempDir('topology-link-');
  afterAll(() => dir.remove());

  it('resolves relative paths from the directory of the file linked to', () => {
    const real = join(dir.path, 'config');
    const elsewhere = join(dir.path, 'elsewhere');
    mkdirSync(real);
    mkdirSync(elsewhere);
    writeFileSync(join(real, 'policy.xml'), '<policies />');
    writeFileSync(
      join(real, 'certflow.topology.json'),
      JSON.stringify({
        apis: [
          {
            name: 'orders',
            displayName: 'o',
            identifierUri: 'api://orders',
            appRoles: [],
            policy: 'policy.xml',
          },
        ],
        partners: [],
      }),
    );
    const link = join(elsewhere, 'certflow.topology.json');
    symlinkSync(join(real, 'certflow.topology.json'), link);
    const loaded = loadTopology(link);
    expect(loaded.file).toBe(link);
    expect(loaded.topology.apis[0]!.policy).toBe(join(real, 'policy.xml'));
  });
});
