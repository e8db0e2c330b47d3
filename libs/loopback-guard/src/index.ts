export {
  AllowedHostsError,
  checkRequest,
  isLoopbackAddress,
  LOOPBACK_HOSTS,
  parseAllowedHosts,
  type GuardDecision,
  type GuardOptions,
  type GuardRequest,
  type Scheme,
} from './loopback-guard';
export { guardIncomingMessage, guardRequestOf, loopbackGuard } from './node-request';
