-- Orders order-service cancelled (`order.cancelled`), so a `payment.requested`
-- still in flight is never charged, and a charge that landed first is
-- refunded. A new table (expand): older releases never read it.
CREATE TABLE cancelled_orders (
    order_id     uuid        PRIMARY KEY,
    cancelled_at timestamptz NOT NULL DEFAULT now()
);
