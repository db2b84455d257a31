-- Idempotency keys of refunds, with the semantics of order-service's: the
-- first answer to (admin, key) is stored and replayed; another request
-- under the same key is refused. Pruned after 48 hours. A new table
-- (expand): older releases never read it.
CREATE TABLE refund_keys (
    user_id         uuid        NOT NULL,
    key             text        NOT NULL,
    request_hash    text        NOT NULL,
    response_status integer,
    response_body   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

CREATE INDEX refund_keys_created_idx ON refund_keys (created_at);
