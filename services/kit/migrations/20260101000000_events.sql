-- Event plumbing shared by every service that publishes or consumes events
-- (storekeeper-kit, `events` module). Each service links this file into its
-- own `migrations/` directory (a symlink), so there is one source of truth.
-- Like every migration it is frozen once released: change it with a new file.

-- Transactional outbox: a service inserts the event here in the same
-- transaction as the state change; the relay publishes it with publisher
-- confirms and stamps `published_at`.
CREATE TABLE outbox (
    id           bigserial   PRIMARY KEY,
    event_id     uuid        NOT NULL,
    event_type   text        NOT NULL,
    payload      text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at timestamptz,
    CONSTRAINT outbox_event_id_key UNIQUE (event_id)
);

-- The relay only ever reads the unpublished tail.
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;

-- Wakes the relay as soon as a transaction that wrote events commits
-- (notifications are delivered on commit, and duplicates are folded).
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Consumer-side de-duplication: the id of every event a consumer has acted
-- on, written in the same transaction as the effect, so a redelivered event
-- has no second effect.
CREATE TABLE processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
