-- The reaper looks for open orders past their deadline every few seconds;
-- this keeps that a scan of the few open orders, not of every order ever
-- placed. An index only (expand): older releases are unaffected.
CREATE INDEX orders_open_idx ON orders (created_at)
    WHERE status IN ('PENDING', 'AWAITING_PAYMENT');
