-- How a filed report's CSV is written, fixed at filing so that every download stays byte-identical
-- to what was filed (and to its csv_sha256). 1: cells as stored (reports filed before this
-- migration); 2: cells a spreadsheet would read as a formula (= + - @ tab CR) start with a single quote.
ALTER TABLE export_reports ADD COLUMN csv_format TINYINT UNSIGNED NOT NULL DEFAULT 1 AFTER csv_sha256;
