-- 0002_save_token: which save committed a checkpoint. See CATALOG.md.
-- A distributed save's ranks agree on a token before the commit; a rank that
-- stopped waiting for the coordinator finds the token here to learn whether
-- its save committed. '' for checkpoints committed before this migration.
ALTER TABLE checkpoints ADD COLUMN save_token TEXT NOT NULL DEFAULT '';
