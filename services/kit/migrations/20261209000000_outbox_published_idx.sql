-- The relay prunes published rows older than the retention (7 days) once a
-- second. Without an index on `published_at` that DELETE read the whole
-- outbox, every row kept for those 7 days, so its cost grew with the table
-- (85 ms a prune on a local outbox of 123,000 rows). This index lets it
-- read only the rows it deletes. Built in the migration's transaction:
-- outbox writes wait for it, about a second per million rows kept.
CREATE INDEX outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;
