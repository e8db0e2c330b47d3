/** `@certflow/entra-emulator/testing`: the emulator as a fixture for a test suite. */
export {
  FIXTURE_API_URI,
  startEmulatorFixture,
  type EmulatorFixture,
  type EmulatorFixtureOptions,
  type FixturePartner,
  type FixturePartnerOptions,
} from './emulator-fixture';
export {
  msalNetworkClient,
  type MsalNetworkClient,
  type MsalRequestOptions,
  type MsalResponse,
} from './msal-network-client';
