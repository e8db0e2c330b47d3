import { defineConfig } from '@playwright/test';

// API flows need no browser. Browser projects, when added, use Debian's Chromium:
// launchOptions.executablePath '/usr/bin/chromium' (never `playwright install`).
export default defineConfig({
  testDir: './tests',
  testMatch: '**/*.e2e.ts',
  globalSetup: './global-setup.ts',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 30_000,
  reporter: [['list']],
  outputDir: '../dist/e2e/test-results',
  projects: [{ name: 'api' }],
});
