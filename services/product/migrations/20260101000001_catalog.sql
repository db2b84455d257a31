-- The catalog: categories and products.
--
-- Stock lives in a plain integer column guarded by a CHECK, so the checkout
-- saga can reserve atomically with
--   UPDATE products SET stock = stock - $n WHERE id = $id AND stock >= $n
-- and the database itself refuses to ever go below zero.
-- Money is integer minor units plus an ISO 4217 code; never floating point.

CREATE TABLE categories (
    id          uuid        PRIMARY KEY,
    slug        text        NOT NULL,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT categories_slug_key UNIQUE (slug),
    CONSTRAINT categories_slug_format CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 100)
);

CREATE TABLE products (
    id          uuid        PRIMARY KEY,
    slug        text        NOT NULL,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    price_cents bigint      NOT NULL,
    currency    text        NOT NULL,
    image_url   text        NOT NULL,
    stock       integer     NOT NULL DEFAULT 0,
    category_id uuid        NOT NULL REFERENCES categories (id) ON DELETE RESTRICT,
    -- Weighted so a match in the name ranks above one in the description.
    search      tsvector    GENERATED ALWAYS AS (
                    setweight(to_tsvector('english'::regconfig, name), 'A')
                    || setweight(to_tsvector('english'::regconfig, description), 'B')
                ) STORED,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT products_slug_key UNIQUE (slug),
    CONSTRAINT products_slug_format CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 100),
    CONSTRAINT products_price_positive CHECK (price_cents > 0),
    CONSTRAINT products_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT products_stock_non_negative CHECK (stock >= 0)
);

CREATE INDEX products_search_idx ON products USING gin (search);
CREATE INDEX products_category_idx ON products (category_id);
CREATE INDEX products_price_idx ON products (price_cents, id);
CREATE INDEX products_name_idx ON products (name, id);
CREATE INDEX products_created_idx ON products (created_at DESC, id);
