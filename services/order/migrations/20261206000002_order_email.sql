-- The shopper's e-mail on each order, as the client placing it sent it
-- (the storefront sends the account's), so admins find orders by e-mail
-- without order-service calling user-service. Expand only: a nullable
-- column older releases neither read nor write, and an index for the
-- admins' search.

ALTER TABLE orders ADD COLUMN email text;

CREATE INDEX orders_email_idx ON orders (lower(email), created_at DESC)
    WHERE email IS NOT NULL;
