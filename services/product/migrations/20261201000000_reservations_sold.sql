-- A reservation whose order was paid becomes SOLD, so RESERVED means
-- "held by an order still in checkout": what the admin sees as reserved
-- beside the stock on hand. Expand only: a release running the previous
-- binary never writes SOLD and leaves SOLD rows alone.

ALTER TABLE stock_reservations DROP CONSTRAINT stock_reservations_status_check;
ALTER TABLE stock_reservations ADD CONSTRAINT stock_reservations_status_check
    CHECK (status IN ('RESERVED', 'REJECTED', 'RELEASED', 'SOLD'));

-- The admin's reserved count reads only the orders still in checkout.
CREATE INDEX stock_reservations_reserved_idx ON stock_reservations (order_id)
    WHERE status = 'RESERVED';
