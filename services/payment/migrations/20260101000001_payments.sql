-- Payment methods and payments.
--
-- A payment method keeps only what a shopper needs to recognise the card
-- (brand, last four digits, expiry) and the provider's opaque token; the
-- card number and CVC never reach this database.
-- One charge per order is a UNIQUE constraint, not a hope: a redelivered
-- `payment.requested` cannot insert a second payment.
-- Money is integer minor units plus an ISO 4217 code.

CREATE TABLE payment_methods (
    id             uuid        PRIMARY KEY,
    user_id        uuid        NOT NULL,
    brand          text        NOT NULL,
    last4          text        NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
    exp_month      integer     NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year       integer     NOT NULL,
    provider_token text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX payment_methods_user_idx ON payment_methods (user_id);

CREATE TABLE payments (
    id                uuid        PRIMARY KEY,
    order_id          uuid        NOT NULL,
    user_id           uuid        NOT NULL,
    payment_method_id uuid        NOT NULL,
    amount_cents      bigint      NOT NULL CHECK (amount_cents >= 0),
    currency          text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status            text        NOT NULL CHECK (status IN ('SUCCEEDED', 'FAILED', 'REFUNDED')),
    refunded_cents    bigint      NOT NULL DEFAULT 0,
    failure_code      text,
    failure_reason    text,
    brand             text,
    last4             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payments_order_id_key UNIQUE (order_id),
    CONSTRAINT payments_refund_bounded CHECK (refunded_cents BETWEEN 0 AND amount_cents)
);

CREATE INDEX payments_user_idx ON payments (user_id, created_at DESC);

CREATE TABLE refunds (
    id           uuid        PRIMARY KEY,
    payment_id   uuid        NOT NULL REFERENCES payments (id),
    amount_cents bigint      NOT NULL CHECK (amount_cents > 0),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX refunds_payment_idx ON refunds (payment_id);
