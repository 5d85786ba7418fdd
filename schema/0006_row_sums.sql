-- Schema 5: row checksums (CATALOG.md, "Row checksums"). The columns start
-- at 0; the migration ladder then computes every existing row's sum in code
-- (add_row_sums, lib/src/catalog/upgrade.cc) before setting user_version 5.
ALTER TABLE checkpoints ADD COLUMN row_sum INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tensors     ADD COLUMN row_sum INTEGER NOT NULL DEFAULT 0;
ALTER TABLE entries     ADD COLUMN row_sum INTEGER NOT NULL DEFAULT 0;
