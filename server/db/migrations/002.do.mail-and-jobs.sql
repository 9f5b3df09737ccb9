-- Mail, registration reminders, export-compliance reports, usage statistics.

-- Every message Ferry sends (or is sending): the record that makes sending idempotent. A job claims
-- its key before it talks to SMTP and marks it sent after; a retry, a second worker or a Redis
-- restart finds the key and sends nothing twice.
CREATE TABLE sent_mail (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  idempotency_key VARCHAR(191) NOT NULL,
  kind ENUM('marketing', 'service') NOT NULL,
  template VARCHAR(64) NOT NULL,
  to_email VARCHAR(254) NULL,
  subject VARCHAR(255) NULL,
  customer_id BIGINT UNSIGNED NULL,
  license_id BIGINT UNSIGNED NULL,
  status ENUM('sending', 'sent', 'skipped') NOT NULL,
  -- why a message was not sent (opted out, bought, trial changed): for support, never personal data
  skip_reason VARCHAR(64) NULL,
  message_id VARCHAR(255) NULL,
  claimed_at DATETIME(3) NOT NULL,
  sent_at DATETIME(3) NULL,
  UNIQUE KEY sent_mail_key (idempotency_key),
  KEY sent_mail_customer (customer_id),
  KEY sent_mail_license (license_id),
  KEY sent_mail_email (to_email)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Addresses that asked for no marketing mail (one-click unsubscribe, or MyAccount). Reminders and
-- news skip them at the moment of sending; service notices still go.
CREATE TABLE mail_opt_outs (
  email VARCHAR(254) NOT NULL PRIMARY KEY,
  source ENUM('unsubscribe_link', 'account') NOT NULL,
  opted_out_at DATETIME(3) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- A trial is "registered" when a customer claims it in MyAccount.
ALTER TABLE licenses ADD COLUMN claimed_at DATETIME(3) NULL AFTER customer_id;
ALTER TABLE licenses ADD KEY licenses_email (email);
ALTER TABLE licenses ADD KEY licenses_created (created_at);
ALTER TABLE licenses ADD KEY licenses_claimed (claimed_at);
ALTER TABLE licenses ADD KEY licenses_trial_end (kind, expires_at);

-- Filed export-compliance reports: legal records, never changed after filing. Downloads are
-- rebuilt from these rows in a fixed order and format, and checked against the stored checksum.
CREATE TABLE export_reports (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  period_from DATE NOT NULL,
  period_to DATE NOT NULL,
  -- 'filing' while rows are written; a report is a record only once 'filed'
  status ENUM('filing', 'filed') NOT NULL,
  row_count INT UNSIGNED NOT NULL,
  csv_sha256 CHAR(64) NOT NULL,
  encryption_classification VARCHAR(64) NOT NULL,
  filed_at DATETIME(3) NOT NULL,
  filed_by VARCHAR(32) NOT NULL,
  KEY export_reports_period (period_from, period_to)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE export_report_rows (
  report_id BIGINT UNSIGNED NOT NULL,
  seq INT UNSIGNED NOT NULL,
  event ENUM('purchase', 'registration') NOT NULL,
  event_date DATE NOT NULL,
  -- kept by id for "my data" in MyAccount; the row itself is the filed record
  customer_id BIGINT UNSIGNED NULL,
  organization VARCHAR(200) NOT NULL,
  contact_name VARCHAR(200) NOT NULL,
  address VARCHAR(500) NOT NULL,
  country CHAR(2) NOT NULL,
  license_id BIGINT UNSIGNED NOT NULL,
  license_kind VARCHAR(16) NOT NULL,
  seats INT UNSIGNED NOT NULL,
  PRIMARY KEY (report_id, seq),
  KEY export_report_rows_customer (customer_id),
  CONSTRAINT export_report_rows_report_fk FOREIGN KEY (report_id) REFERENCES export_reports (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Daily aggregates of the software reports. Counts only: nothing here identifies a person.
CREATE TABLE usage_daily (
  day DATE NOT NULL PRIMARY KEY,
  installations INT UNSIGNED NOT NULL,
  new_installations INT UNSIGNED NOT NULL,
  active_machines_day INT UNSIGNED NOT NULL,
  active_machines_week INT UNSIGNED NOT NULL,
  uses INT UNSIGNED NOT NULL,
  computed_at DATETIME(3) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE usage_daily_countries (
  day DATE NOT NULL,
  country CHAR(2) NOT NULL,
  trials INT UNSIGNED NOT NULL,
  active_machines INT UNSIGNED NOT NULL,
  PRIMARY KEY (day, country)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- How many machines used ferry how often that day: a histogram, not a list of machines.
CREATE TABLE usage_daily_frequency (
  day DATE NOT NULL,
  uses_bucket VARCHAR(8) NOT NULL,
  machines INT UNSIGNED NOT NULL,
  PRIMARY KEY (day, uses_bucket)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Piracy signals for staff: which license (by id) or which address (by a keyed hash) looks wrong.
-- Recomputed per day by the roll-up.
CREATE TABLE piracy_signals (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  day DATE NOT NULL,
  kind ENUM('key_over_seats', 'trials_from_one_address', 'clock_set_back', 'token_from_other_machine') NOT NULL,
  -- `license:<id>` or `address:<keyed hash of the IP>`: what staff look into, not who
  subject VARCHAR(64) NOT NULL,
  count INT UNSIGNED NOT NULL,
  detail VARCHAR(255) NOT NULL,
  UNIQUE KEY piracy_signals_once (day, kind, subject)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
