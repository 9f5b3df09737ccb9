-- Machines whose id changed (a kernel upgrade, a VM move, WSL) move their activation to the new
-- fingerprint, proven by the activation's device key (server/licenses/rebind.ts), within a budget
-- per license and rolling year: REBIND_BUDGET, or this license's own when staff set one.
ALTER TABLE licenses ADD COLUMN rebind_budget SMALLINT UNSIGNED NULL;

-- Every rebind asked for, moved or refused, and why: what staff see in /admin, and what the budget
-- counts (outcome 'rebound' within the last 365 days). The address goes after RETAIN_IP_ADDRESSES.
CREATE TABLE activation_rebinds (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  license_id BIGINT UNSIGNED NOT NULL,
  activation_id BIGINT UNSIGNED NOT NULL,
  from_fingerprint CHAR(64) NOT NULL,
  to_fingerprint CHAR(64) NOT NULL,
  ip VARCHAR(45) NULL,
  outcome ENUM('rebound', 'refused') NOT NULL,
  -- A fixed code (budget_exhausted, bad_signature, challenge_unknown…), never a caller's words.
  reason VARCHAR(64) NULL,
  occurred_at DATETIME(3) NOT NULL,
  KEY activation_rebinds_license (license_id, outcome, occurred_at),
  KEY activation_rebinds_time (occurred_at),
  CONSTRAINT activation_rebinds_license_fk FOREIGN KEY (license_id) REFERENCES licenses (id) ON DELETE CASCADE,
  CONSTRAINT activation_rebinds_activation_fk FOREIGN KEY (activation_id) REFERENCES activations (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- One trial per machine, ever: a trial moved to a new fingerprint makes that fingerprint one that
-- had this trial (licenses.trial_fingerprint keeps the first). Looked up with it by startTrial.
CREATE TABLE trial_rebound_machines (
  fingerprint CHAR(64) NOT NULL PRIMARY KEY,
  license_id BIGINT UNSIGNED NOT NULL,
  created_at DATETIME(3) NOT NULL,
  KEY trial_rebound_machines_license (license_id),
  CONSTRAINT trial_rebound_machines_license_fk FOREIGN KEY (license_id) REFERENCES licenses (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- A trial refused for its address's pace (TRIALS_PER_ADDRESS_PER_DAY) has no license to name.
ALTER TABLE license_events MODIFY license_id BIGINT UNSIGNED NULL;
