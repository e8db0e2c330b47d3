import { defineConfig } from '@playwright/test';

// Browser tests use Debian's Chromium (never `playwright install`). It trusts exactly the
// emulator's TLS key: global-setup.ts checks that key chains to the development CA and pins
// it for Chromium (CERTFLOW_EMULATOR_SPKI), instead of turning certificate checks off.
const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  ...(process.env.CERTFLOW_EMULATOR_SPKI
    ? [`--ignore-certificate-errors-spki-list=${process.env.CERTFLOW_EMULATOR_SPKI}`]
    : []),
];

export default defineConfig({
  testDir: './tests',
  globalSetup: './global-setup.ts',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 30_000,
  reporter: [['list']],
  outputDir: '../dist/e2e/test-results',
  projects: [
    {
      name: 'api',
      testMatch: ['**/flow.e2e.ts', '**/hsm.e2e.ts', '**/test-tokens.e2e.ts', '**/emulator-fixture.e2e.ts'],
    },
    {
      name: 'chromium',
      testMatch: ['**/portal.e2e.ts', '**/sign-in-logs.e2e.ts'],
      use: {
        browserName: 'chromium',
        launchOptions: {
          executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
          args: chromiumArgs,
        },
        viewport: { width: 1280, height: 800 },
      },
    },
  ],
});
