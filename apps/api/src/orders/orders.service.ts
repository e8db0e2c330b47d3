import { Injectable } from '@nestjs/common';
import type { AppPrincipal } from '@certflow/claims';
import { Order, OrdersResponse } from './order';

/** In-memory sample; a real API would read a store filtered by the caller. */
const SAMPLE_ORDERS: readonly Order[] = [
  { id: 'ord-1001', status: 'delivered', customerReference: 'PO-7731', total: { amount: '129.90', currency: 'EUR' }, createdAt: '2025-01-06T09:12:00Z' },
  { id: 'ord-1002', status: 'shipped', customerReference: 'PO-7735', total: { amount: '48.00', currency: 'EUR' }, createdAt: '2025-01-07T14:40:00Z' },
  { id: 'ord-1003', status: 'received', customerReference: 'PO-7742', total: { amount: '310.25', currency: 'EUR' }, createdAt: '2025-01-08T08:05:00Z' },
];

@Injectable()
export class OrdersService {
  /** The orders visible to the caller, with who the API believes the caller is. */
  listFor(principal: AppPrincipal): OrdersResponse {
    return {
      orders: SAMPLE_ORDERS.map((order) => ({ ...order, total: { ...order.total } })),
      caller: {
        clientAppId: principal.clientAppId,
        tenantId: principal.tenantId,
        roles: [...principal.roles],
        clientAuthentication: principal.clientAuthentication,
      },
    };
  }
}
