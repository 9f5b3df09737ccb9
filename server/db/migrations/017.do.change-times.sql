-- When each license and activation row last changed, to the microsecond, set by MariaDB itself on
-- every UPDATE, whoever makes it (the API, MyAccount, /admin, a job, a statement typed by staff).
-- Every server holds the activations and licenses validations need in memory (activation-state.ts
-- in server/licenses/); besides the change messages over Redis, it reads the rows changed since its
-- last look every few seconds, through these indexes, so that a lost message, or a change that sent
-- none, is seen within a bounded time. Writes that change nothing a validation reads (last seen)
-- keep the time as it was (last-seen.ts).
ALTER TABLE licenses
  ADD COLUMN updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  ADD KEY licenses_updated (updated_at);
ALTER TABLE activations
  ADD COLUMN updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  ADD KEY activations_updated (updated_at);
