-- Buying for real: an order is completed only once it is paid (a payment provider's signed webhook,
-- or staff marking an invoice paid), and what was bought can be changed later.

-- What an order buys: a new license (optionally upgrading a claimed trial), or seats added to a
-- license the customer already has (`target_license_id`).
ALTER TABLE orders
  ADD COLUMN kind ENUM('new', 'add_seats') NOT NULL DEFAULT 'new' AFTER customer_id,
  ADD COLUMN target_license_id BIGINT UNSIGNED NULL AFTER license_id,
  ADD KEY orders_status (status, created_at),
  ADD CONSTRAINT orders_target_fk FOREIGN KEY (target_license_id) REFERENCES licenses (id);

-- Every provider event acted on, once: a provider sends the same event again until it hears 2xx.
CREATE TABLE payment_events (
  provider VARCHAR(32) NOT NULL,
  event_id VARCHAR(191) NOT NULL,
  order_id BIGINT UNSIGNED NOT NULL,
  received_at DATETIME(3) NOT NULL,
  PRIMARY KEY (provider, event_id),
  KEY payment_events_order (order_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Staff can suspend a license (and reinstate it): unlike a revocation, not final.
ALTER TABLE licenses MODIFY status ENUM('active', 'suspended', 'revoked', 'cancelled') NOT NULL DEFAULT 'active';

-- A trial upgraded in place: its activation moved to the permanent license, and remembers the trial,
-- so that the machine's trial token is answered with a token of the new license.
ALTER TABLE activations ADD COLUMN converted_from_license_id BIGINT UNSIGNED NULL AFTER license_id;

-- What a change was (seats from and to, a trial's new end, an order or staff reference).
ALTER TABLE license_events ADD COLUMN detail VARCHAR(255) NULL AFTER ip;
