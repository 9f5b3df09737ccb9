import { USAGE_BATCH_MAX } from '../../licensing/index.js';
import type { AgentContext } from '../context.js';
import { checkLicense, trialInForce } from '../license.js';
import type { MachineIdSource } from '../machine.js';
import { reportUsage } from '../usage-report.js';
import { countSpooled } from '../usage-spool.js';

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
  const waiting = await countSpooled(ctx.paths.spool);
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
  ctx.out(`  waiting events: ${waiting}`);
}
