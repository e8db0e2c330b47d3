#!/usr/bin/env node
// Builds what a command needs (quietly, through Nx's cache), then runs its entry point in this
// process with the remaining arguments: `build-and-run.cjs <nx projects,comma,separated> <script> [args…]`.
'use strict';
const { spawnSync } = require('node:child_process');
const { resolve } = require('node:path');

const [projects, script, ...args] = process.argv.slice(2);
const root = resolve(__dirname, '..', '..', '..');

// The supported Node.js lines are package.json's `engines.node` (README: "Node.js lines").
// Outside them certflow still runs, but says it is untested there.
const supported = require(resolve(root, 'package.json')).engines.node;
const [wantMajor, wantMinor] = /^>=(\d+)\.(\d+)$/.exec(supported).slice(1).map(Number);
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < wantMajor || (major === wantMajor && minor < wantMinor)) {
  process.stderr.write(
    `warning: Node.js ${process.version} is outside certflow's supported range (${supported}; ` +
      `tested on the LTS lines 22, 24 and 26). It may work, but nothing checks that it does.\n`,
  );
}
const started = Date.now();
const build = spawnSync(
  process.execPath,
  [
    require.resolve('nx/bin/nx', { paths: [root] }),
    'run-many',
    '-t',
    'build',
    '-p',
    projects,
    '--output-style=static',
  ],
  { cwd: root, encoding: 'utf8', env: { NX_DAEMON: 'false', NX_NO_CLOUD: 'true', ...process.env } },
);
if (build.status !== 0) {
  process.stderr.write(build.stdout + build.stderr);
  process.stderr.write(`\nbuild failed (nx run-many -t build -p ${projects})\n`);
  process.exit(build.status ?? 1);
}
if (process.env.CERTFLOW_SHOW_BUILD_TIME) process.stderr.write(`built in ${Date.now() - started} ms\n`);
process.argv = [process.argv[0], resolve(root, script), ...args];
require(resolve(root, script));
