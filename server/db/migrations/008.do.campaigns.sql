-- Marketing sends to many people at once: a news message staff wrote in /admin, or the notice of a
-- published release. A campaign is a row; starting it copies its audience into campaign_recipients
-- (in the same transaction), and the fan-out queues one message per recipient from those rows, in
-- batches. Each message is claimed in sent_mail under `campaign:<campaign>:<recipient>`, so a
-- fan-out run again after a crash or a Redis flush picks up the pending rows and sends nobody twice.
-- A campaign's state is here, never only in Redis.
CREATE TABLE campaigns (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  kind ENUM('news', 'release') NOT NULL,
  -- a release notice: the release it announces (one campaign per release)
  release_id INT UNSIGNED NULL,
  subject VARCHAR(200) NOT NULL,
  -- plain text written by staff (news) or the release notes
  body TEXT NOT NULL,
  -- draft: written, not sent; sending: recipients fixed, messages going out; sent: none pending
  state ENUM('draft', 'sending', 'sent') NOT NULL DEFAULT 'draft',
  -- runs of the fan-out so far: each run's mail jobs have ids of their own (see campaigns.ts)
  fan_out_runs INT UNSIGNED NOT NULL DEFAULT 0,
  created_at DATETIME(3) NOT NULL,
  started_at DATETIME(3) NULL,
  finished_at DATETIME(3) NULL,
  UNIQUE KEY campaigns_release (release_id),
  KEY campaigns_state (state),
  CONSTRAINT campaigns_release_fk FOREIGN KEY (release_id) REFERENCES releases (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Who a campaign goes to, fixed when it starts, one row per address. `status` mirrors the outcome
-- recorded in sent_mail (which is what guarantees once); `failed` is a message whose retries ran
-- out, sent again by "resume". Erasing an account deletes its rows.
CREATE TABLE campaign_recipients (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  campaign_id BIGINT UNSIGNED NOT NULL,
  email VARCHAR(254) NOT NULL,
  customer_id BIGINT UNSIGNED NULL,
  license_id BIGINT UNSIGNED NULL,
  status ENUM('pending', 'sent', 'skipped', 'failed') NOT NULL DEFAULT 'pending',
  UNIQUE KEY campaign_recipients_once (campaign_id, email),
  KEY campaign_recipients_progress (campaign_id, status, id),
  KEY campaign_recipients_email (email),
  CONSTRAINT campaign_recipients_campaign_fk FOREIGN KEY (campaign_id) REFERENCES campaigns (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
