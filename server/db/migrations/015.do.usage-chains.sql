-- Signed, hash-chained usage events (licensing/usage-chain.ts, server/usage/chain.ts). An activation
-- with a device key (migration 014) signs its trial usage events and chains them; each chain has a
-- row here, locked (SELECT … FOR UPDATE) while a batch is checked against it, so that two servers
-- taking batches of one machine at once judge them one after the other. A new device key of the same
-- activation (a remade ferry home) starts a new chain.
CREATE TABLE usage_chains (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  activation_id BIGINT UNSIGNED NOT NULL,
  device_key BINARY(32) NOT NULL,
  -- The stored event with the highest counter (0 and the genesis hash before the first).
  head_counter BIGINT UNSIGNED NOT NULL DEFAULT 0,
  head_hash BINARY(32) NOT NULL,
  head_at DATETIME(3) NULL,
  UNIQUE KEY usage_chains_key (activation_id, device_key),
  CONSTRAINT usage_chains_activation_fk FOREIGN KEY (activation_id) REFERENCES activations (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- `signed`: verified against the activation's device key. Unsigned rows (agents from before device
-- keys) keep counter 0 and NULL chain fields, and stay unique by (activation, time, kind) as before;
-- signed rows are unique by their place in their chain (two uses in one millisecond are two events).
ALTER TABLE usage_events
  ADD COLUMN signed BOOLEAN NOT NULL DEFAULT FALSE,
  ADD COLUMN chain_id BIGINT UNSIGNED NULL,
  ADD COLUMN counter BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN prev_hash BINARY(32) NULL,
  ADD COLUMN hash BINARY(32) NULL,
  ADD COLUMN signature BINARY(64) NULL,
  ADD UNIQUE KEY usage_events_once_v2 (activation_id, occurred_at, kind, counter),
  DROP KEY usage_events_once,
  ADD UNIQUE KEY usage_events_chain_counter (chain_id, counter),
  ADD UNIQUE KEY usage_events_chain_hash (chain_id, hash),
  ADD KEY usage_events_chain_prev (chain_id, prev_hash),
  ADD CONSTRAINT usage_events_chain_fk FOREIGN KEY (chain_id) REFERENCES usage_chains (id) ON DELETE CASCADE;

-- What the chain checks find, per event, go to license_events (kind usage_*, with the reason in
-- detail); the roll-up counts them per license and day as these signals.
ALTER TABLE piracy_signals MODIFY kind ENUM(
  'key_over_seats', 'trials_from_one_address', 'clock_set_back', 'token_from_other_machine',
  'usage_forged', 'usage_replay', 'usage_gap', 'usage_fork', 'usage_counter_back', 'usage_time_back', 'usage_before_trial'
) NOT NULL;
