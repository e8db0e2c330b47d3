import type { RunningEmulator } from '@certflow/entra-emulator';
import { startEmulatorFixture } from '@certflow/entra-emulator/testing';
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

/**
 * The emulator fixture (a real emulator in a fresh directory; its registrations go unused: the
 * tests sign their tokens for API_APP_ID with the emulator's keys) and the API configured against it.
 */
export async function startApiWithEmulator(
  _name: string, // names the test, for the reader
  env: Record<string, string> = {},
): Promise<ApiWithEmulator> {
  const fixture = await startEmulatorFixture();
  try {
    const api = await startApi(apiConfigFor(fixture.emulator, env), { logger: false });
    return {
      emulator: fixture.emulator,
      api,
      close: async () => {
        await api.close();
        await fixture.close();
      },
    };
  } catch (err) {
    await fixture.close();
    throw err;
  }
}
