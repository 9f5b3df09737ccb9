-- Asking again for a machine's trial needs what its first request had: the activation secret,
-- which the agent makes and keeps in its home. Only its SHA-256 is stored. Trials from before this
-- migration (and any started by an agent too old to send a secret) have none (NULL): the first
-- request that also shows a token of the trial, signed by this server, sets it (see startTrial in
-- server/licenses/service.ts).
ALTER TABLE licenses ADD COLUMN trial_secret_hash BINARY(32) NULL AFTER trial_fingerprint;
