/** An order the partner may read: the small real resource behind the protected route. */
export interface Order {
  id: string;
  status: 'received' | 'shipped' | 'delivered';
  customerReference: string;
  total: { amount: string; currency: string };
  createdAt: string;
}

/** Who called, as shown back to the caller (what the token said, never the token). */
export interface OrdersCaller {
  clientAppId: string;
  tenantId: string;
  roles: string[];
  clientAuthentication: 'certificate' | 'secret' | 'public';
}

export interface OrdersResponse {
  orders: Order[];
  caller: OrdersCaller;
}
