import js from '@eslint/js';
import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';

// Who may import whom. Libraries stand alone; tools (local infrastructure) may use
// libraries and other tools; apps use libraries only; test suites may use anything but apps.
const depConstraints = [
  { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:lib'] },
  { sourceTag: 'type:tool', onlyDependOnLibsWithTags: ['type:lib', 'type:tool'] },
  { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:lib'] },
  { sourceTag: 'type:test', onlyDependOnLibsWithTags: ['type:lib', 'type:tool'] },
  { sourceTag: 'scope:api', notDependOnLibsWithTags: ['scope:partner'] },
  { sourceTag: 'scope:partner', notDependOnLibsWithTags: ['scope:api'] },
];

export default [
  {
    ignores: [
      '**/dist',
      '**/dist-bench',
      '**/node_modules',
      '**/test-results',
      '**/playwright-report',
      '.certflow',
      '.nx',
      'load/results',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    plugins: { '@nx': nx },
    files: ['**/*.ts', '**/*.mts', '**/*.js', '**/*.mjs'],
    rules: {
      '@nx/enforce-module-boundaries': [
        'error',
        { enforceBuildableLibDependency: false, allow: [], depConstraints },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Tests and benchmarks of apps and libraries may start local infrastructure (the emulator,
    // the gateway, a redis-server); their product code still may not. Benchmarks run the built
    // package, by its own name, as a user would.
    files: [
      'apps/**/*.spec.ts',
      'apps/**/*.test-helpers.ts',
      'apps/**/test/**/*.ts',
      'libs/**/*.spec.ts',
      'libs/**/*.test-helpers.ts',
      '*/*/bench/**/*.ts',
    ],
    rules: {
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          allowCircularSelfDependency: true,
          allow: [],
          depConstraints: depConstraints.map((c) =>
            c.sourceTag === 'type:app' || c.sourceTag === 'type:lib'
              ? { ...c, onlyDependOnLibsWithTags: ['type:lib', 'type:tool'] }
              : c,
          ),
        },
      ],
    },
  },
  {
    files: ['**/vitest.config.mts', '**/playwright.config.ts'],
    rules: { '@nx/enforce-module-boundaries': 'off' },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: {
        require: 'readonly',
        module: 'writable',
        process: 'readonly',
        __dirname: 'readonly',
        console: 'readonly',
      },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // The emulator's admin page: plain browser JavaScript, no modules.
    files: ['tools/entra-emulator/portal/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: {
        window: 'readonly',
        document: 'readonly',
        location: 'readonly',
        fetch: 'readonly',
        crypto: 'readonly',
        atob: 'readonly',
        btoa: 'readonly',
        TextDecoder: 'readonly',
        URLSearchParams: 'readonly',
        console: 'readonly',
      },
    },
  },
  {
    files: ['load/k6/**/*.js'],
    // k6's globals (console included: https://grafana.com/docs/k6/latest/javascript-api/#console).
    languageOptions: {
      globals: { __ENV: 'readonly', __VU: 'readonly', __ITER: 'readonly', console: 'readonly' },
    },
  },
];
