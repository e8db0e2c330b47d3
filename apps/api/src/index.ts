export * from './config/api-config';
export * from './config/config-error';
export * from './api-app';
export * from './run-api';
export { APP_ROLES_EXTENSION, AppRole, TOPOLOGY_API } from './app-roles';
export {
  AuthFailure,
  type AuthFailureCode,
  Public,
  RequireAppRoles,
  CurrentPrincipal,
} from '@certflow/nest-entra-auth';
export type { Order, OrdersCaller, OrdersResponse } from './orders/order';
