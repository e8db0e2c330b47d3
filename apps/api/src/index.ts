export * from './config/api-config';
export * from './config/config-error';
export * from './api-app';
export * from './run-api';
export { AuthFailure, type AuthFailureCode } from './auth/auth-failure';
export { Public, RequireAppRoles, CurrentPrincipal } from './auth/auth-decorators';
export type { Order, OrdersCaller, OrdersResponse } from './orders/order';
