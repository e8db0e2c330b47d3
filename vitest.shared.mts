import { defineConfig } from 'vitest/config';

/** One Vitest set-up for every project: sources of workspace packages are imported directly. */
export function projectConfig(root: string, overrides: { testTimeout?: number } = {}) {
  const conditions = ['@certflow/source', 'node', 'import', 'require', 'default'];
  return defineConfig({
    root,
    resolve: { conditions },
    ssr: { resolve: { conditions, externalConditions: conditions } },
    test: {
      environment: 'node',
      include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
      testTimeout: overrides.testTimeout ?? 20_000,
      hookTimeout: 60_000,
      reporters: ['default'],
    },
  });
}
