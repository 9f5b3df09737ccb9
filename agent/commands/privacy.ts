import { USAGE_BATCH_MAX } from '../../licensing/index.js';
import type { AgentContext } from '../context.js';
import { checkLicense, trialInForce } from '../license.js';
import type { MachineIdSource } from '../machine.js';
import { jsonLine } from '../terminal-text.js';
import { reportUsage } from '../usage-report.js';
import { spooledEvents, type UsageEvent } from '../usage-spool.js';

/**
 * What the agent reports, in the words of the privacy policy, with this machine's actual values.
 * Kept next to the code that sends: a change to what is sent changes this text in the same review.
 */
function policyText(spoolFile: string): string[] {
  return [
    'What ferry reports to the license server, and when',
    '',
    'During a trial only, every use of ferry records one event with:',
    '  - this machine\'s fingerprint: HMAC-SHA256 of the OS machine id, never the id itself',
    '  - the locale (language and region, e.g. en-US)',
    '  - the date and time',
    '  - the kind of command (activate, status, put, get, sync…): never file names, paths,',
    '    host names, user names or any other argument',
    '  - "clock_set_back" when this machine\'s clock was set back behind a time ferry already saw',
    'The license server also sees the IP address each request comes from.',
    'Each event is one JSON object with these fields:',
    '  at       the date and time of the use (UTC), as this machine\'s clock said',
    '  locale   the locale',
    '  kind     the kind of command',
    '  counter  1 for the activation\'s first event, then 2, 3…: the server sees one missing',
    '  prev     the SHA-256 of the previous event (for the first: of the activation and key):',
    '           the events form a chain that cannot be reordered, cut or copied unseen',
    '  sig      an Ed25519 signature of all the above and the activation id, by device-key.pem',
    'The last three come only from an activation with a device key (one made by an older ferry',
    'sends events without them). The server stores each event once, and records as signs of',
    'misuse: bad signatures, events resent with other content, missing or repeated counters,',
    'two events after the same one, times going back, and times before the trial began.',
    `While the server cannot be reached, events wait on disk in ${spoolFile}`,
    `and are sent later in batches of up to ${USAGE_BATCH_MAX}.`,
    '',
    'When activating, ferry sends the fingerprint, the locale, the platform (e.g. linux-x64), its',
    'version and the public half of a key pair it makes for the activation (device-key.pem, whose',
    'private half never leaves this machine); a license key when you give one; your email address',
    'only if you give it with "ferry activate --trial --email ADDRESS" (and your choice of marketing',
    'mail with --marketing).',
    'A trial request also sends the random activation secret that ferry keeps in its home',
    '(trial-secret): it proves the trial is asked for where it started, and says nothing about you.',
    'To renew its lease, ferry sends the license token and the fingerprint.',
    'When the machine id changes, ferry sends the token, the new fingerprint and a signature by',
    'device-key.pem, to move the license to it.',
    'A permanent license sends nothing beyond activation and this validation: no usage events.',
  ];
}

const SOURCE_NOTE: Record<MachineIdSource, string> = {
  os: 'of the OS machine id',
  FERRY_MACHINE_ID: 'of FERRY_MACHINE_ID (set in the environment)',
  generated: 'of an id generated in FERRY_HOME (no OS machine id readable)',
};

export async function privacy(ctx: AgentContext): Promise<void> {
  const check = await checkLicense(ctx);
  const trial = trialInForce(check);
  await reportUsage(ctx, trial, 'privacy');
  const machine = await ctx.machine();
  const waiting: UsageEvent[] = await spooledEvents(ctx.paths.spool);
  const reporting = trial
    ? 'on: this machine runs a trial'
    : check.state?.kind === 'permanent'
      ? 'off: this machine has a permanent license'
      : 'off: no trial in force on this machine';

  for (const line of policyText(ctx.paths.spool)) ctx.out(line);
  ctx.out('');
  ctx.out('On this machine');
  ctx.out(`  fingerprint:    ${machine.fingerprint}`);
  ctx.out(`                  (HMAC-SHA256 ${SOURCE_NOTE[machine.source]})`);
  ctx.out(`  locale:         ${ctx.locale}`);
  ctx.out(`  reporting:      ${reporting}`);
  ctx.out(`  waiting events: ${waiting.length}`);
  if (waiting.length > 0) {
    ctx.out('');
    ctx.out('Waiting to be sent, one line an event, in the order they will go (each line is the JSON');
    ctx.out('sent; characters a terminal would act on are shown as \\u escapes, the same JSON):');
    for (const event of waiting) ctx.out(`  ${jsonLine(event)}`);
  }
}
