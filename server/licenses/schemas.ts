import { Type, type Static } from 'typebox';
import { FINGERPRINT_PATTERN } from '../../licensing/index.js';

export const ErrorSchema = Type.Object(
  { error: Type.Object({ code: Type.String(), message: Type.String() }) },
  { $id: 'Error', description: 'Every error answer, whatever its status' },
);

export const Fingerprint = Type.String({ pattern: FINGERPRINT_PATTERN, description: 'HMAC-SHA256 of the machine id, 64 hex' });

/** What the agent tells about the machine when it activates. All optional, all short. */
const MachineFacts = {
  locale: Type.Optional(Type.String({ maxLength: 35, pattern: '^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$' })),
  platform: Type.Optional(Type.String({ maxLength: 64 })),
  hostname: Type.Optional(Type.String({ maxLength: 255 })),
  agentVersion: Type.Optional(Type.String({ maxLength: 32 })),
};

export const TrialRequest = Type.Object(
  {
    fingerprint: Fingerprint,
    ...MachineFacts,
    email: Type.Optional(Type.String({ format: 'email', maxLength: 254 })),
    marketingOptIn: Type.Optional(Type.Boolean({ default: false })),
  },
  { additionalProperties: false },
);
export type TrialRequest = Static<typeof TrialRequest>;

export const ActivationRequest = Type.Object(
  {
    key: Type.String({ minLength: 1, maxLength: 64, description: 'the license key as the customer typed it' }),
    fingerprint: Fingerprint,
    ...MachineFacts,
  },
  { additionalProperties: false },
);
export type ActivationRequest = Static<typeof ActivationRequest>;

export const ValidateRequest = Type.Union([
  Type.Object({ fingerprint: Type.Optional(Fingerprint) }, { additionalProperties: false }),
  Type.Null(),
]);

export const License = Type.Object({
  id: Type.Integer(),
  kind: Type.Union([Type.Literal('trial'), Type.Literal('permanent')]),
  status: Type.Union([Type.Literal('active'), Type.Literal('revoked'), Type.Literal('cancelled')]),
  seats: Type.Integer(),
  expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
  claimCode: Type.Optional(Type.String({ description: 'trials: what the customer enters in MyAccount to register this trial' })),
  keyHint: Type.Optional(Type.String({ description: 'the last group of the key' })),
});
export type License = Static<typeof License>;

export const Activation = Type.Object({
  id: Type.Integer(),
  fingerprint: Type.String(),
  active: Type.Boolean(),
  createdAt: Type.String({ format: 'date-time' }),
});
export type Activation = Static<typeof Activation>;

/** The newest published release of the agent, so that agents can say an update is there. */
const LatestVersion = Type.Optional(Type.String({ description: 'the newest published version of ferry' }));

export const Licensed = Type.Object({ license: License, activation: Activation, token: Type.String(), latestVersion: LatestVersion });
export type Licensed = Static<typeof Licensed>;

export const Validated = Type.Object({ valid: Type.Literal(true), license: License, token: Type.String(), latestVersion: LatestVersion });

export const ActivationParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });

export const BearerHeaders = Type.Object({ authorization: Type.Optional(Type.String()) });
