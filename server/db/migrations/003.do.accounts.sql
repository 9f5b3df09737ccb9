-- MyAccount, the customer portal: customers become accounts (a password, a verified address,
-- consent, a status), with single-use tokens for mailed links, orders, the consent history and an
-- audit log. All times are UTC.

-- An account is a customer with a password. Staff-recorded sales stay customers without one, so the
-- same address may appear on several sales but on one account only (the unique generated column).
-- A deleted account keeps a tombstone: status 'deleted', its id, type and country; no name, address,
-- organization, email or password (hence name and address may now be NULL).
ALTER TABLE customers
  MODIFY name VARCHAR(200) NULL,
  MODIFY address VARCHAR(500) NULL,
  ADD COLUMN password_hash VARCHAR(255) NULL,
  ADD COLUMN email_verified_at DATETIME(3) NULL,
  -- news and offers; off unless the customer ticks it
  ADD COLUMN marketing_opt_in BOOLEAN NOT NULL DEFAULT FALSE,
  ADD COLUMN age_confirmed_at DATETIME(3) NULL,
  ADD COLUMN status ENUM('active', 'cancelled', 'deleted') NOT NULL DEFAULT 'active',
  -- the retention job erases cancelled accounts RETAIN_CANCELLED_ACCOUNTS after this
  ADD COLUMN cancelled_at DATETIME(3) NULL,
  ADD COLUMN deleted_at DATETIME(3) NULL,
  ADD COLUMN updated_at DATETIME(3) NULL,
  ADD COLUMN account_email VARCHAR(254) GENERATED ALWAYS AS (IF(password_hash IS NULL, NULL, email)) STORED,
  ADD UNIQUE KEY customers_account_email (account_email),
  ADD KEY customers_status (status, cancelled_at);

-- Deleting an account anonymises the usage reports of its machines: the address they came from goes.
ALTER TABLE usage_events MODIFY ip VARCHAR(45) NULL;

-- Links mailed for verifying an address (registration, a changed address) and for resetting a
-- password. Only the SHA-256 of the token is kept; a token is used once and expires.
CREATE TABLE account_tokens (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  customer_id BIGINT UNSIGNED NOT NULL,
  purpose ENUM('verify_email', 'reset_password') NOT NULL,
  token_hash BINARY(32) NOT NULL,
  -- a change of address: the new one, applied when its link is followed
  new_email VARCHAR(254) NULL,
  created_at DATETIME(3) NOT NULL,
  expires_at DATETIME(3) NOT NULL,
  used_at DATETIME(3) NULL,
  UNIQUE KEY account_tokens_hash (token_hash),
  KEY account_tokens_customer (customer_id, purpose),
  CONSTRAINT account_tokens_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- A purchase in the portal. No card data: the order is recorded, then completed by the checkout step
-- (or, later, a payment provider's webhook naming `provider_ref`), which issues the permanent license.
-- The browser's user agent is kept for piracy detection, as the privacy policy says.
CREATE TABLE orders (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  customer_id BIGINT UNSIGNED NOT NULL,
  -- the claimed trial this purchase turns into a permanent license, if any
  trial_license_id BIGINT UNSIGNED NULL,
  -- the permanent license issued when the order was completed
  license_id BIGINT UNSIGNED NULL,
  seats INT UNSIGNED NOT NULL,
  amount_minor BIGINT UNSIGNED NOT NULL,
  currency CHAR(3) NOT NULL,
  status ENUM('pending', 'paid', 'cancelled') NOT NULL DEFAULT 'pending',
  provider VARCHAR(32) NULL,
  provider_ref VARCHAR(191) NULL,
  user_agent VARCHAR(512) NULL,
  created_at DATETIME(3) NOT NULL,
  paid_at DATETIME(3) NULL,
  UNIQUE KEY orders_provider_ref (provider, provider_ref),
  KEY orders_customer (customer_id),
  CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id),
  CONSTRAINT orders_license_fk FOREIGN KEY (license_id) REFERENCES licenses (id),
  CONSTRAINT orders_trial_fk FOREIGN KEY (trial_license_id) REFERENCES licenses (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Every change of a customer's mail choices, with its time and where it was made.
CREATE TABLE consent_history (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  customer_id BIGINT UNSIGNED NOT NULL,
  -- news: news and offers; marketing_mail: any marketing mail at all (trial reminders included)
  purpose ENUM('news', 'marketing_mail') NOT NULL,
  granted BOOLEAN NOT NULL,
  source ENUM('registration', 'account') NOT NULL,
  at DATETIME(3) NOT NULL,
  KEY consent_history_customer (customer_id, at),
  CONSTRAINT consent_history_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Each access to, export, correction and deletion of a customer's data, with its time. Never any
-- personal data: an action name and the customer's bare id, which after deletion names a tombstone.
CREATE TABLE audit_log (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  customer_id BIGINT UNSIGNED NULL,
  action VARCHAR(48) NOT NULL,
  at DATETIME(3) NOT NULL,
  KEY audit_log_customer (customer_id, at),
  KEY audit_log_time (at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
