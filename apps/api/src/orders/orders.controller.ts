import { Controller, Get, Inject } from '@nestjs/common';
import type { AppPrincipal } from '@certflow/claims';
import { CurrentPrincipal, RequireAppRoles } from '../auth/auth-decorators';
import type { OrdersResponse } from './order';
import { OrdersService } from './orders.service';

@Controller('orders')
export class OrdersController {
  constructor(@Inject(OrdersService) private readonly orders: OrdersService) {}

  @RequireAppRoles('Orders.Read')
  @Get()
  list(@CurrentPrincipal() principal: AppPrincipal): OrdersResponse {
    return this.orders.listFor(principal);
  }
}
