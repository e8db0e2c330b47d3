/**
 * Twin routes for the authentication-overhead benchmark only (never mounted by `startApi`
 * unless asked): the same orders listing, once behind the token checks and the app role,
 * once public with a fixed caller, so that the difference is the authentication alone.
 */
import { Controller, Get, Inject, Module } from '@nestjs/common';
import type { AppPrincipal } from '@certflow/claims';
import { CurrentPrincipal, Public } from '@certflow/nest-entra-auth';
import { AppRole, RequireRoles } from '../src/app-roles';
import type { OrdersResponse } from '../src/orders/order';
import { OrdersService } from '../src/orders/orders.service';

const ANONYMOUS: AppPrincipal = {
  tenantId: '00000000-0000-0000-0000-000000000000',
  clientAppId: '00000000-0000-0000-0000-000000000000',
  objectId: '00000000-0000-0000-0000-000000000000',
  roles: [AppRole.OrdersRead],
  clientAuthentication: 'certificate',
  tokenVersion: '2.0',
  audience: 'bench',
};

@Controller('bench/orders')
export class BenchTwinController {
  constructor(@Inject(OrdersService) private readonly orders: OrdersService) {}

  @RequireRoles(AppRole.OrdersRead)
  @Get('authenticated')
  authenticated(@CurrentPrincipal() principal: AppPrincipal): OrdersResponse {
    return this.orders.listFor(principal);
  }

  /** Same signature as its twin (Nest resolves a custom parameter either way): only the guards differ. */
  @Public()
  @Get('public')
  public(@CurrentPrincipal() principal: AppPrincipal | undefined): OrdersResponse {
    return this.orders.listFor(principal ?? ANONYMOUS);
  }
}

@Module({ controllers: [BenchTwinController], providers: [OrdersService] })
export class BenchTwinModule {}
