-- Accounts and refresh-token families.
--
-- Emails are stored trimmed and lower-cased, so the plain UNIQUE constraint
-- is case-insensitive in effect. Passwords are stored only as Argon2id PHC
-- strings. Refresh tokens are stored only as SHA-256 digests; a token that
-- was already rotated and is presented again revokes its whole family.

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL CONSTRAINT users_email_key UNIQUE,
    password_hash TEXT NOT NULL,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'customer'
                  CONSTRAINT users_role_check CHECK (role IN ('customer', 'admin')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One family per login; every rotation adds a token to the family.
CREATE TABLE refresh_families (
    id             UUID PRIMARY KEY,
    user_id        UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at     TIMESTAMPTZ,
    revoked_reason TEXT
);

CREATE INDEX refresh_families_user_idx ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    family_id  UUID NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    rotated_at TIMESTAMPTZ
);

CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
