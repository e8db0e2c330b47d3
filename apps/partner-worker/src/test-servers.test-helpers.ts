/**
 * The partner's test servers (stub token endpoint, HTTP(S) servers, temp directories) live with
 * the library whose specs use them most, libs/partner-client; the library exports nothing for
 * tests, so the CLI and facade specs take the one copy by path.
 */
// eslint-disable-next-line @nx/enforce-module-boundaries -- test helpers only, never product code
export * from '../../../libs/partner-client/src/test-servers.test-helpers';
