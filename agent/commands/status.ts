import { peekClaims, POLICIES, type LicenseKind } from '../../licensing/index.js';
import type { AgentContext } from '../context.js';
import { formatSpan, formatTime, shortFingerprint } from '../format.js';
import { checkIn, checkInDue, checkLicense, trialInForce, type LicenseCheck } from '../license.js';
import type { MachineIdSource } from '../machine.js';
import { reportUsage } from '../usage-report.js';
import { countSpooled } from '../usage-spool.js';
import { printable } from '../terminal-text.js';

/** `ferry status --json`: one object, the same facts as the text. Times are ISO strings or null. */
export interface StatusReport {
  /** `active`, `offline`, or the problem's exit name in lower case (`no_license`, `trial_expired`…). */
  status: string;
  exitCode: number;
  problem: { exit: string; message: string } | null;
  kind: LicenseKind | null;
  licenseId: string | null;
  activationId: number | null;
  leaseEndsAt: string | null;
  trialEndsAt: string | null;
  /** When this machine stops working without renewing online (lease end plus offline grace). */
  usableUntil: string | null;
  /** The lease was renewed online by this command. */
  renewed: boolean;
  offline: boolean;
  renewalProblem: string | null;
  server: string | null;
  fingerprint: string;
  machineIdSource: MachineIdSource;
  claimCode: string | null;
  /** `now`: what the clock says; `licenseTime`: the time license decisions go by (see clock.ts). */
  clock: { setBack: boolean; now: string; licenseTime: string; highWater: string | null };
  /**
   * The latest time the license server signed that this machine holds (ISO), where it comes from
   * (`token`: its issue time; `check-in`: a check-in answer's signed time) and which server signed it.
   */
  trustedTime: { at: string; from: 'token' | 'check-in'; server: string } | null;
  pendingUsageEvents: number;
  /** The last check-in with the license server: when (ISO) and what came of it (`valid`, `renewed`, `license_revoked`, `failed: …`). */
  lastCheck: { at: string; result: string } | null;
}

const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

async function buildReport(ctx: AgentContext, check: LicenseCheck): Promise<StatusReport> {
  const { state, assessment } = check;
  // Verified claims when there are some; otherwise what the token says, for display only.
  const claims = assessment && 'claims' in assessment ? assessment.claims : state ? peekClaims(state.token) : null;
  const machine = await ctx.machine();
  const trialEnd = state?.licenseExpiresAt ? Date.parse(state.licenseExpiresAt) : claims?.lic_exp !== undefined ? claims.lic_exp * 1000 : null;
  return {
    status: check.problem ? check.problem.exit.toLowerCase() : check.offline ? 'offline' : 'active',
    exitCode: check.problem?.exitCode ?? 0,
    problem: check.problem ? { exit: check.problem.exit, message: check.problem.message } : null,
    kind: state?.kind ?? null,
    licenseId: state?.licenseId ?? null,
    activationId: state?.activationId ?? null,
    leaseEndsAt: iso(claims ? claims.exp * 1000 : null),
    trialEndsAt: iso(trialEnd),
    usableUntil: iso(assessment?.verdict === 'usable' ? assessment.usableUntil : null),
    renewed: check.renewed,
    offline: check.offline,
    renewalProblem: check.renewalProblem,
    server: state?.server ?? (await ctx.resolveServer().catch(() => null)),
    fingerprint: shortFingerprint(machine.fingerprint),
    machineIdSource: machine.source,
    claimCode: state?.claimCode ?? null,
    clock: { setBack: ctx.clock.setBack, now: iso(ctx.clock.wallNow)!, licenseTime: iso(ctx.clock.now)!, highWater: iso(ctx.clock.highWater) },
    trustedTime: assessment && 'trustedTime' in assessment && state
      ? {
        at: iso(assessment.trustedTime)!,
        from: assessment.trustedFrom,
        server: assessment.trustedFrom === 'check-in' && state.trustedTime ? state.trustedTime.server : state.server,
      }
      : null,
    pendingUsageEvents: await countSpooled(ctx.paths.spool),
    lastCheck: state?.lastCheck ?? null,
  };
}

const MACHINE_ID_SOURCES: Record<MachineIdSource, string> = {
  os: 'from the OS machine id',
  FERRY_MACHINE_ID: 'from FERRY_MACHINE_ID',
  generated: 'from an id generated in FERRY_HOME (no OS machine id readable)',
};

function statusText(report: StatusReport, check: LicenseCheck): string[] {
  const rows: [string, string | null][] = [];
  const time = (value: string | null) => (value === null ? null : formatTime(Date.parse(value)));
  let state = report.status.replace(/_/g, ' ');
  if (report.offline && report.usableUntil) {
    // Only a permanent license has an offline grace; a trial works offline to its lease end.
    state = `offline, ${report.kind === 'permanent' ? 'grace' : 'lease'} until ${time(report.usableUntil)}`;
  }
  rows.push(['License', report.kind ? `${report.kind} ${report.licenseId}: ${state}` : state]);
  // The problem itself goes to stderr as the command's error line; here it would say it twice.
  if (report.renewalProblem && !report.problem) rows.push(['Renewal', `could not renew online: ${report.renewalProblem}`]);
  rows.push(['Activation', report.activationId === null ? null : String(report.activationId)]);
  if (report.leaseEndsAt && report.kind) {
    const margin = formatSpan(POLICIES[report.kind].renewWhenLeftMs);
    const when = report.renewed ? 'renewed online just now' : `renewed online when less than ${margin} is left`;
    rows.push(['Lease ends', `${time(report.leaseEndsAt)} (${when})`]);
  }
  if (report.kind === 'trial') rows.push(['Trial ends', time(report.trialEndsAt)]);
  if (report.claimCode) rows.push(['Claim code', `${report.claimCode} (enter it in MyAccount to register this trial)`]);
  rows.push(['Server', report.server ?? 'none set (pass --server URL or set FERRY_SERVER)']);
  if (report.lastCheck) rows.push(['Checked', `${time(report.lastCheck.at)}: ${report.lastCheck.result.replace(/_/g, ' ')} (checks in hourly while in use)`]);
  rows.push(['Machine', `${report.fingerprint} (fingerprint, ${MACHINE_ID_SOURCES[report.machineIdSource]})`]);
  if (report.trustedTime) {
    const from = report.trustedTime.from === 'token' ? 'when it issued the lease' : 'at a check-in';
    rows.push(['Trusted', `${time(report.trustedTime.at)}, the latest time ${printable(report.trustedTime.server)} signed (${from}); licenses never go by an earlier one`]);
  }
  // The policy that follows, said where it applies: a trial fails closed, a permanent license open (license.ts).
  const policy = report.kind === 'trial'
    ? '; a trial then checks the time with its license server at every command'
    : report.kind === 'permanent' ? '; offline, the license works to its grace counted in license time' : '';
  rows.push(['Clock', report.clock.setBack
    ? `set back: it says ${time(report.clock.now)}, behind a time seen or signed before; licenses go by ${time(report.clock.licenseTime)}${policy}`
    : 'ok']);
  if (check.state?.kind === 'trial' || report.pendingUsageEvents > 0) rows.push(['Usage spool', `${report.pendingUsageEvents} event(s) waiting to be sent`]);
  // Values hold what the license server said (a refusal's text, a check's result): escaped, every one.
  return rows.filter((row): row is [string, string] => row[1] !== null).map(([label, value]) => `${`${label}:`.padEnd(13)}${printable(value)}`);
}

/**
 * Shows what this machine knows about its license, renewing the lease if due. Prints it all even
 * when there is no license in force, then fails with that problem's exit code.
 */
export async function status(ctx: AgentContext, options: { json?: boolean }): Promise<void> {
  let check = await checkLicense(ctx);
  // Status is asked to be right: a check-in that is due is made now, not beside, and judged at once.
  if (check.state && check.problem === null && !check.renewed && !check.offline && checkInDue(ctx, check.state)) {
    await checkIn(ctx, check.state);
    check = await checkLicense(ctx);
  }
  await reportUsage(ctx, trialInForce(check), 'status');
  const report = await buildReport(ctx, check);
  if (options.json) ctx.out(JSON.stringify(report));
  else for (const line of statusText(report, check)) ctx.out(line);
  if (check.problem) throw check.problem;
}
