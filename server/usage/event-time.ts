/**
 * When a usage event happened, as the agent's clock said, read strictly. JSON Schema's `date-time`
 * lets through what is no instant at all (a leap second `23:59:60`, which JavaScript cannot hold)
 * or none MySQL can store (year 0000): stored with INSERT IGNORE, such a value became
 * `0000-00-00` and broke every page that showed it.
 */
const ISO_INSTANT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/i;

/** The instant `text` names, or null when it is not a real one: every field must survive the round trip. */
export function parseInstant(text: string): Date | null {
  const match = ISO_INSTANT.exec(text);
  if (!match) return null;
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) return null;
  const [, year, month, day, hour, minute, second, , zone] = match;
  const offsetMinutes = zone!.toUpperCase() === 'Z' ? 0 : (zone!.startsWith('-') ? -1 : 1) * (Number(zone!.slice(1, 3)) * 60 + Number(zone!.slice(4, 6)));
  // The same wall-clock fields, read back from the instant in the text's own zone.
  const local = new Date(ms + offsetMinutes * 60_000);
  const fields = [local.getUTCFullYear(), local.getUTCMonth() + 1, local.getUTCDate(), local.getUTCHours(), local.getUTCMinutes(), local.getUTCSeconds()];
  const given = [year, month, day, hour, minute, second].map(Number);
  return fields.every((value, i) => value === given[i]) ? new Date(ms) : null;
}

/** How far an agent's clock may be off the server's, either way, before its events are refused. */
export const CLOCK_SKEW_MS = 24 * 3_600_000;

export type EventTimeRefusal = { code: 'EVENT_TIME_INVALID' | 'EVENT_BEFORE_TRIAL' | 'EVENT_IN_FUTURE'; message: string };

/**
 * The event's instant when it is a real one within the trial's life (not before the trial started,
 * nor after the server's now, each give or take the clock skew); otherwise why it is refused.
 */
export function checkEventTime(text: string, trialStartedAt: Date, receivedAt: Date): { at: Date } | { refused: EventTimeRefusal } {
  const at = parseInstant(text);
  if (at === null) return { refused: { code: 'EVENT_TIME_INVALID', message: `"${text}" is not a real date and time` } };
  if (at.getTime() < trialStartedAt.getTime() - CLOCK_SKEW_MS) {
    return { refused: { code: 'EVENT_BEFORE_TRIAL', message: `${text} is before this trial started (${trialStartedAt.toISOString()})` } };
  }
  if (at.getTime() > receivedAt.getTime() + CLOCK_SKEW_MS) {
    return { refused: { code: 'EVENT_IN_FUTURE', message: `${text} is more than a day ahead of the server` } };
  }
  return { at };
}
