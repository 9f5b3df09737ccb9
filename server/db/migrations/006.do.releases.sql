-- Releases of the agent that staff published: what /download lists, what agents learn of at their
-- check-ins, and what release notices announce. `manifest` is the root-signed release manifest
-- exactly as `npm run package` wrote it (JSON text of {payload, signature}); artefacts live in the
-- releases folder under FERRY_DATA_DIR. A release notice goes out once: `announced_at` is set when
-- its send has been queued.
CREATE TABLE releases (
  id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  version VARCHAR(32) NOT NULL,
  notes TEXT NOT NULL,
  manifest MEDIUMTEXT NOT NULL,
  published_at DATETIME(3) NOT NULL,
  announced_at DATETIME(3) NULL,
  UNIQUE KEY releases_version (version)
) ENGINE=InnoDB;

-- One row per artefact fetched from /download/…: downloads per version and platform, no address.
CREATE TABLE release_downloads (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  release_id INT UNSIGNED NOT NULL,
  platform VARCHAR(32) NOT NULL,
  artefact VARCHAR(100) NOT NULL,
  downloaded_at DATETIME(3) NOT NULL,
  KEY release_downloads_release (release_id, platform),
  CONSTRAINT release_downloads_release FOREIGN KEY (release_id) REFERENCES releases (id) ON DELETE CASCADE
) ENGINE=InnoDB;
