-- Charges decided but not yet answered by the card provider. The
-- `payment.charges` consumer writes a row in the transaction that marks
-- `payment.requested` processed, and the capture worker calls the provider
-- outside any transaction, then records the payment and deletes the row in
-- one more. A row outlives its worker only after a crash or a provider
-- timeout: `claimed_until` is when another worker may take it over (the
-- provider takes the order id as its idempotency key, so a second call
-- never captures twice). `attempts` counts the provider calls begun.
-- A new table (expand): a release that does not know it never reads it.
CREATE TABLE charge_intents (
    order_id          uuid        PRIMARY KEY,
    user_id           uuid        NOT NULL,
    payment_method_id uuid        NOT NULL,
    amount_cents      bigint      NOT NULL,
    currency          text        NOT NULL,
    correlation_id    uuid        NOT NULL,
    request_id        text,
    trace_context     jsonb,
    attempts          integer     NOT NULL DEFAULT 1,
    claimed_until     timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX charge_intents_claimed_until ON charge_intents (claimed_until);
