-- Filed export-compliance reports are records: the database itself refuses to change or remove
-- them, whatever the code does. Rows may be removed only while their report is still 'filing' (a
-- filing that failed cleans up after itself); a report's content never changes once 'filed'.
-- Account erasure keeps filed rows as they are (it never touches this table).
--
-- Each filing is also chained to the one before: `prev_hash` is the previous filing's `chain_hash`,
-- and `chain_hash` = SHA-256 over (prev_hash, position, id, period, csv_sha256). Someone with the
-- power to drop these triggers can still delete a filing, but not without the chain showing it.
-- Reports filed before this migration have no position: they stand outside the chain.
ALTER TABLE export_reports
  ADD COLUMN chain_position INT UNSIGNED NULL,
  ADD COLUMN prev_hash CHAR(64) NULL,
  ADD COLUMN chain_hash CHAR(64) NULL,
  ADD UNIQUE KEY export_reports_chain (chain_position);

-- A download whose rows no longer match the filed checksum, or a broken chain, as staff see it in
-- /admin/reports. Kept apart from the report, which cannot change.
CREATE TABLE export_report_alerts (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  report_id BIGINT UNSIGNED NOT NULL,
  problem VARCHAR(500) NOT NULL,
  detected_at DATETIME(3) NOT NULL,
  KEY export_report_alerts_report (report_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TRIGGER export_report_rows_no_update BEFORE UPDATE ON export_report_rows FOR EACH ROW
  SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'export_report_rows are a filed record: they cannot be changed';

CREATE TRIGGER export_report_rows_no_delete BEFORE DELETE ON export_report_rows FOR EACH ROW
BEGIN
  IF (SELECT status FROM export_reports WHERE id = OLD.report_id) = 'filed' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'export_report_rows of a filed report cannot be deleted';
  END IF;
END;

CREATE TRIGGER export_reports_no_update BEFORE UPDATE ON export_reports FOR EACH ROW
BEGIN
  IF OLD.status = 'filed' AND NOT (
       NEW.status <=> OLD.status AND NEW.period_from <=> OLD.period_from AND NEW.period_to <=> OLD.period_to
       AND NEW.row_count <=> OLD.row_count AND NEW.csv_sha256 <=> OLD.csv_sha256 AND NEW.csv_format <=> OLD.csv_format
       AND NEW.encryption_classification <=> OLD.encryption_classification AND NEW.filed_at <=> OLD.filed_at
       AND NEW.filed_by <=> OLD.filed_by AND NEW.chain_position <=> OLD.chain_position
       AND NEW.prev_hash <=> OLD.prev_hash AND NEW.chain_hash <=> OLD.chain_hash) THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'a filed export report cannot be changed';
  END IF;
END;

CREATE TRIGGER export_reports_no_delete BEFORE DELETE ON export_reports FOR EACH ROW
BEGIN
  IF OLD.status = 'filed' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'a filed export report cannot be deleted';
  END IF;
END;
