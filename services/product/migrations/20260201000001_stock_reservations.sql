-- Stock reservations for the checkout saga (the `inventory` module).
--
-- One row per order records what was decided: RESERVED (stock taken),
-- REJECTED (some line was short; nothing taken) or RELEASED (the order was
-- cancelled and its stock given back, or cancelled before it was ever
-- reserved — then the row is a tombstone so a late `order.created` takes
-- nothing). The row makes every decision happen once per order.

CREATE TABLE stock_reservations (
    order_id   uuid        PRIMARY KEY,
    status     text        NOT NULL CHECK (status IN ('RESERVED', 'REJECTED', 'RELEASED')),
    items      jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
