-- The public half (raw Ed25519, 32 bytes) of the device key the agent made for this activation
-- (agent/device-key.ts). A signature by it proves a request comes from the installation holding the
-- activation. NULL: an activation by an agent from before device keys.
ALTER TABLE activations ADD COLUMN device_key BINARY(32) NULL;
