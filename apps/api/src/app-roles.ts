/**
 * The app roles this API's routes require, declared once. The topology file
 * (`certflow.topology.json`) must define each of them on the api named `TOPOLOGY_API`
 * (app-roles.spec.ts checks it), and the OpenAPI document states them on every operation as
 * `x-app-roles`, which is what tools read to know which answer a partner gets.
 */
import { applyDecorators } from '@nestjs/common';
import { ApiExtension } from '@nestjs/swagger';
import { RequireAppRoles } from '@certflow/nest-entra-auth';

/** The name of the api in the topology file that this app serves. */
export const TOPOLOGY_API = 'orders';

export const AppRole = {
  OrdersRead: 'Orders.Read',
  OrdersWrite: 'Orders.Write',
} as const;
export type AppRole = (typeof AppRole)[keyof typeof AppRole];

/** The OpenAPI extension on an operation that lists the app roles it requires (all of them). */
export const APP_ROLES_EXTENSION = 'x-app-roles';

/** The caller's token must carry every one of `roles` (else 403); the OpenAPI operation says so. */
export function RequireRoles(...roles: [AppRole, ...AppRole[]]): MethodDecorator & ClassDecorator {
  return applyDecorators(RequireAppRoles(...roles), ApiExtension(APP_ROLES_EXTENSION, roles));
}
