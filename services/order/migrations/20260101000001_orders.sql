-- Carts, orders and idempotency keys.
--
-- Order status only moves through the transitions `status.rs` allows; the
-- CHECK lists the words. Prices are copied into `order_items` at checkout
-- (re-read from product-service, never taken from the client), so an order
-- keeps the price it was placed at. Money is integer minor units.

CREATE TABLE cart_items (
    user_id    uuid        NOT NULL,
    product_id uuid        NOT NULL,
    quantity   integer     NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, product_id)
);

CREATE TABLE orders (
    id                  uuid        PRIMARY KEY,
    user_id             uuid        NOT NULL,
    status              text        NOT NULL
        CHECK (status IN ('PENDING', 'AWAITING_PAYMENT', 'PAID', 'CANCELLED', 'REFUNDED')),
    total_cents         bigint      NOT NULL CHECK (total_cents > 0),
    currency            text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    shipping_address    jsonb       NOT NULL,
    payment_method_id   uuid        NOT NULL,
    cancellation_reason text,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX orders_user_idx ON orders (user_id, created_at DESC);
CREATE INDEX orders_created_idx ON orders (created_at DESC);

CREATE TABLE order_items (
    order_id         uuid    NOT NULL REFERENCES orders (id),
    product_id       uuid    NOT NULL,
    name             text    NOT NULL,
    unit_price_cents bigint  NOT NULL CHECK (unit_price_cents > 0),
    quantity         integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, product_id)
);

-- Stripe-style idempotency: the first response to (user, key) is stored
-- and replayed; a different request body under the same key is refused.
-- Keys are pruned after 48 hours (the promise is at least 24).
CREATE TABLE idempotency_keys (
    user_id         uuid        NOT NULL,
    key             text        NOT NULL,
    request_hash    text        NOT NULL,
    response_status integer,
    response_body   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
