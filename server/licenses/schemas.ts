import { Type, type Static } from 'typebox';
import { FINGERPRINT_PATTERN } from '../../licensing/index.js';

export const ErrorSchema = Type.Object(
  { error: Type.Object({ code: Type.String(), message: Type.String() }) },
  { $id: 'Error', description: 'Every error answer, whatever its status' },
);

/** The error body, described for one status (no $id: each status has its own description). */
const errorAnswer = (description: string) =>
  Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String() }) }, { description });

/** What each error status means on the API, for the documentation at /docs. */
const ERROR_MEANINGS: Record<number, string> = {
  400: 'The request is malformed: VALIDATION_FAILED (a field), INVALID_JSON, BAD_REQUEST, or a code of the call (KEY_FORMAT, EVENT_IN_FUTURE, PERIOD_INVALID)',
  401: 'No credential, or not a valid one: TOKEN_* for license tokens, REBIND_CHALLENGE_INVALID for a rebind challenge used, expired or unknown, ADMIN_AUTH_REQUIRED for admin calls',
  403: 'Refused for this license or machine: LICENSE_REVOKED, TRIAL_EXPIRED, ACTIVATION_INACTIVE, TOKEN_WRONG_MACHINE, NOT_A_TRIAL; rebinds: REBIND_BUDGET_EXHAUSTED, REBIND_SIGNATURE_INVALID, REBIND_NO_DEVICE_KEY',
  404: 'No such license, activation or report (LICENSE_NOT_FOUND, ACTIVATION_NOT_FOUND, REPORT_NOT_FOUND)',
  409: 'SEATS_EXHAUSTED: every seat of the license is taken; rebinds: REBIND_CONFLICT, REBIND_STALE, TRIAL_EXISTS; trials: TRIAL_MOVED',
  413: 'PAYLOAD_TOO_LARGE: the body is over 1 MiB',
  415: 'UNSUPPORTED_MEDIA_TYPE: send the body as application/json',
  429: 'RATE_LIMITED: too many calls from this address; ACTIVATION_VELOCITY: too many new machines for this license; TRIAL_VELOCITY: too many new trials from this address. Retry-After says when to try again',
  503: 'SERVICE_UNAVAILABLE: MySQL or Redis is away for a moment; Retry-After says when to try again',
};

/**
 * The documented error answers of an API call: the statuses it names, plus 400 and 503 that every
 * /v1 call can answer, plus 413 and 415 for a call that takes a JSON body.
 */
export function errorResponses(options: { body?: boolean }, ...statuses: number[]): Record<number, unknown> {
  const all = new Set([400, 503, ...(options.body ? [413, 415] : []), ...statuses]);
  return Object.fromEntries([...all].sort().map((status) => [status, errorAnswer(ERROR_MEANINGS[status] ?? 'An error')]));
}

export const Fingerprint = Type.String({ pattern: FINGERPRINT_PATTERN, description: 'HMAC-SHA256 of the machine id, 64 hex' });

/** What the agent tells about the machine when it activates. All optional, all short. */
const MachineFacts = {
  locale: Type.Optional(Type.String({ maxLength: 35, pattern: '^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$' })),
  platform: Type.Optional(Type.String({ maxLength: 64 })),
  hostname: Type.Optional(Type.String({ maxLength: 255 })),
  agentVersion: Type.Optional(Type.String({ maxLength: 32 })),
  devicePublicKey: Type.Optional(Type.String({
    pattern: '^[A-Za-z0-9_-]{43}$',
    description: 'the public half of the Ed25519 key the agent made for this activation: 32 bytes, base64url',
  })),
};

/** 32 random bytes or more, base64url: what proves that a request comes from where the trial started. */
export const ActivationSecret = Type.String({
  pattern: '^[A-Za-z0-9_-]{43,128}$',
  description: 'the random secret this machine\'s agent made and sent when it started its trial; base64url, at least 32 bytes',
});

export const TrialRequest = Type.Object(
  {
    fingerprint: Fingerprint,
    activationSecret: Type.Optional(ActivationSecret),
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
  Type.Object({
    fingerprint: Type.Optional(Fingerprint),
    checkIn: Type.Optional(Type.Boolean({
      description: 'a check-in: answer without a new token unless one is due (agents before check-ins always get one)',
    })),
  }, { additionalProperties: false }),
  Type.Null(),
]);

export const License = Type.Object({
  id: Type.Integer(),
  kind: Type.Union([Type.Literal('trial'), Type.Literal('permanent')]),
  status: Type.Union([Type.Literal('active'), Type.Literal('suspended'), Type.Literal('revoked'), Type.Literal('cancelled')]),
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

export const Certificate = Type.Object(
  { payload: Type.String(), signature: Type.String() },
  { description: "the deployment root's certificate of the key that signed the token (a signed 'ferry-signing-key' statement)" },
);

/** See licensing/trusted-time.ts: what agents judge leases by, beside their own clock. */
export const SignedTime = Type.Object(
  { payload: Type.String(), signature: Type.String() },
  {
    description: "the server's time, signed with its current signing key: payload is the JSON {kid, t (ms since 1970), type: 'ferry-time'}, "
      + 'signature the base64url ES256 (r||s) signature of its bytes; signed at most once a second, so up to a second behind',
  },
);

/** The newest published release of the agent, so that agents can say an update is there. */
const LatestVersion = Type.Optional(Type.String({ description: 'the newest published version of ferry' }));

export const Licensed = Type.Object({ license: License, activation: Activation, token: Type.String(), certificate: Certificate, latestVersion: LatestVersion });
export type Licensed = Static<typeof Licensed>;

export const Validated = Type.Object({
  valid: Type.Literal(true),
  license: License,
  token: Type.Optional(Type.String({ description: 'a renewed lease: only when the lease is due for renewal or the license changed' })),
  certificate: Type.Optional(Certificate),
  checkedAt: Type.String({ format: 'date-time', description: 'when the server checked the license and activation' }),
  time: Type.Optional(SignedTime),
  latestVersion: LatestVersion,
});
export type Validated = Static<typeof Validated>;

export const ActivationParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });

export const BearerHeaders = Type.Object({ authorization: Type.Optional(Type.String()) });

export const RebindChallenge = Type.Object({
  challenge: Type.String({ description: 'random, base64url: sign it in the rebind statement; good for one rebind, for two minutes' }),
  expiresAt: Type.String({ format: 'date-time' }),
});

export const RebindRequest = Type.Object(
  {
    fingerprint: { ...Fingerprint, description: "this machine's new fingerprint" },
    challenge: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', description: 'the challenge from rebind-challenge' }),
    signature: Type.String({
      pattern: '^[A-Za-z0-9_-]{86}$',
      description: "Ed25519 signature by the activation's device key, base64url, of the UTF-8 lines "
        + '"ferry-rebind/v1", the activation id, the token\'s fingerprint, the new fingerprint and the challenge, joined by \\n',
    }),
  },
  { additionalProperties: false },
);

export const Rebound = Type.Object({
  license: License,
  activation: Activation,
  token: Type.String(),
  certificate: Certificate,
  rebinds: Type.Object({
    used: Type.Integer({ description: "moves of this license's machines in the last 365 days, this one included" }),
    budget: Type.Integer({ description: 'moves allowed per rolling 365 days' }),
    left: Type.Integer(),
  }),
  latestVersion: LatestVersion,
});
