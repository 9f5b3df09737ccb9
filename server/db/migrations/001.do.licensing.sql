-- Licensing: customers (sales recorded by staff; portal accounts extend this table later), licenses,
-- their activations on machines, the usage events trials report, and license events for piracy signals.
-- All times are UTC (the server sets time_zone = '+00:00' on every connection).

CREATE TABLE customers (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  type ENUM('business', 'individual') NOT NULL,
  name VARCHAR(200) NOT NULL,
  organization VARCHAR(200) NULL,
  address VARCHAR(500) NOT NULL,
  country CHAR(2) NOT NULL,
  email VARCHAR(254) NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY customers_email (email)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE licenses (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  kind ENUM('trial', 'permanent') NOT NULL,
  status ENUM('active', 'revoked', 'cancelled') NOT NULL DEFAULT 'active',
  seats INT UNSIGNED NOT NULL,
  -- SHA-256 of the canonical key: keys are secrets and are not stored as such. Trials have none.
  key_digest BINARY(32) NULL,
  key_hint CHAR(5) NULL,
  -- One trial per machine, ever: the unique index is what makes concurrent requests create one.
  trial_fingerprint CHAR(64) NULL,
  -- What the customer types in MyAccount to claim (register) a trial started from the agent.
  claim_code CHAR(10) NULL,
  customer_id BIGINT UNSIGNED NULL,
  email VARCHAR(254) NULL,
  marketing_opt_in BOOLEAN NOT NULL DEFAULT FALSE,
  expires_at DATETIME(3) NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  revoked_at DATETIME(3) NULL,
  UNIQUE KEY licenses_key (key_digest),
  UNIQUE KEY licenses_trial_machine (trial_fingerprint),
  UNIQUE KEY licenses_claim_code (claim_code),
  KEY licenses_customer (customer_id),
  CONSTRAINT licenses_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE activations (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  license_id BIGINT UNSIGNED NOT NULL,
  fingerprint CHAR(64) NOT NULL,
  -- Activating again from the same machine reuses this row; deactivating clears the flag.
  active BOOLEAN NOT NULL DEFAULT TRUE,
  platform VARCHAR(64) NULL,
  hostname VARCHAR(255) NULL,
  agent_version VARCHAR(32) NULL,
  locale VARCHAR(35) NULL,
  ip VARCHAR(45) NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  last_validated_at DATETIME(3) NULL,
  deactivated_at DATETIME(3) NULL,
  UNIQUE KEY activations_license_machine (license_id, fingerprint),
  KEY activations_fingerprint (fingerprint),
  CONSTRAINT activations_license_fk FOREIGN KEY (license_id) REFERENCES licenses (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE usage_events (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  activation_id BIGINT UNSIGNED NOT NULL,
  license_id BIGINT UNSIGNED NOT NULL,
  fingerprint CHAR(64) NOT NULL,
  occurred_at DATETIME(3) NOT NULL,
  kind VARCHAR(32) NOT NULL,
  locale VARCHAR(35) NULL,
  -- The address the server saw the report come from.
  ip VARCHAR(45) NOT NULL,
  received_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  -- A retried batch carries the same events: they are stored once.
  UNIQUE KEY usage_events_once (activation_id, occurred_at, kind),
  KEY usage_events_license (license_id),
  KEY usage_events_received (received_at),
  CONSTRAINT usage_events_activation_fk FOREIGN KEY (activation_id) REFERENCES activations (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- What happened to a license that matters for support and piracy signals: seats refused,
-- tokens presented from another machine, revocations.
CREATE TABLE license_events (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  license_id BIGINT UNSIGNED NOT NULL,
  kind VARCHAR(32) NOT NULL,
  fingerprint CHAR(64) NULL,
  ip VARCHAR(45) NULL,
  occurred_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY license_events_license (license_id, kind),
  KEY license_events_time (occurred_at),
  CONSTRAINT license_events_license_fk FOREIGN KEY (license_id) REFERENCES licenses (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
