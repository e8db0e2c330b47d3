import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmulator, type RunningEmulator } from '@certflow/entra-emulator';
import { startApi, type RunningApi } from '../api-app';
import { loadApiConfig } from '../config/api-config';
import { API_APP_ID } from './access-tokens.test-helpers';

export interface ApiWithEmulator {
  emulator: RunningEmulator;
  api: RunningApi;
  close(): Promise<void>;
}

/** The API's configuration against `emulator` (audience API_APP_ID, any port), plus `env`. */
export function apiConfigFor(
  emulator: Pick<RunningEmulator, 'url' | 'tenantId' | 'caCertificatePath'>,
  env: Record<string, string> = {},
): ReturnType<typeof loadApiConfig> {
  return loadApiConfig({
    PORT: '0',
    ENTRA_INSTANCE: emulator.url,
    ENTRA_TENANT_ID: emulator.tenantId,
    API_AUDIENCES: API_APP_ID,
    ENTRA_CA_FILE: emulator.caCertificatePath,
    ...env,
  });
}

/** A real emulator in a fresh state directory and the API configured against it (audience API_APP_ID). */
export async function startApiWithEmulator(
  name: string,
  env: Record<string, string> = {},
): Promise<ApiWithEmulator> {
  const stateDir = mkdtempSync(join(tmpdir(), `certflow-api-${name}-`));
  const emulator = await startEmulator({ stateDir, port: 0 });
  const api = await startApi(apiConfigFor(emulator, env), { logger: false });
  return {
    emulator,
    api,
    close: async () => {
      await api.close();
      await emulator.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
