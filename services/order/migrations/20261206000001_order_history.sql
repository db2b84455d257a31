-- Every status an order took, with the step that moved it and when, so an
-- admin can read an order's saga history. Expand only: a new table written
-- next to `orders`; older releases neither read nor write it. Orders placed
-- before it get their first and current status from `orders`.

CREATE TABLE order_history (
    order_id uuid        NOT NULL REFERENCES orders (id),
    status   text        NOT NULL,
    step     text        NOT NULL,
    reason   text,
    at       timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX order_history_order_idx ON order_history (order_id, at);

INSERT INTO order_history (order_id, status, step, at)
    SELECT id, 'PENDING', 'placed', created_at FROM orders;

INSERT INTO order_history (order_id, status, step, reason, at)
    SELECT id, status, 'recorded', cancellation_reason, updated_at FROM orders
    WHERE status <> 'PENDING';
