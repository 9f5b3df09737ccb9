-- The SHA-256 of the last token issued to each activation. A validation that presents exactly that
-- token is recognised by its digest, without an ECDSA verification; any other token (an older one
-- still in its grace, one from before this migration: NULL) is verified in full (see validate in
-- server/licenses/service.ts).
ALTER TABLE activations ADD COLUMN token_digest BINARY(32) NULL;
