import { defineConfig } from '@playwright/test';

// Opens the load report (load/results/report.smoke.html, a file) in Debian's Chromium (never
// `playwright install`): no web server, nothing fetched from the network.
export default defineConfig({
  testDir: './report-check',
  testMatch: '**/*.e2e.ts',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 30_000,
  reporter: [['list']],
  outputDir: '../dist/load/report-check',
  use: {
    browserName: 'chromium',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    },
    viewport: { width: 1100, height: 900 },
  },
});
