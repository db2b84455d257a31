-- Refresh-token rotation grace window: a token presented again within a few
-- seconds of its rotation (two tabs refreshing at once) gets the same
-- successor back instead of revoking its family. The successor is kept only
-- sealed with a key derived from the rotated token itself, which this
-- database never holds (it stores digests), so reading the table yields no
-- usable token. Nullable columns: the previous release ignores them.

ALTER TABLE refresh_tokens
    ADD COLUMN successor_hash   BYTEA,
    ADD COLUMN successor_sealed BYTEA;
