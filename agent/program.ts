import { Command, CommanderError, Option } from 'commander';
import type { ActivateOptions } from './commands/activation.js';
import type { ListFlags, MkdirFlags, SyncFlags } from './commands/transfer.js';
import type { FilterRule } from './transfer/filters.js';
import type { TransferFlags } from './transfer/settings.js';
import { createContext, readAgentVersion, type AgentContext } from './context.js';
import { describeFailure, oneLine } from './errors.js';
import { exitCodeOf, exitCodeTable } from './exit-codes.js';
import { formatTime } from './format.js';
import { printable } from './terminal-text.js';
import type { Terminal } from './transfer/prompt.js';
import type { DataStreams } from './transfer/stdio.js';
import { updateNotice, type NoticeFlags } from './update-notice.js';

/**
 * The command line: parses, hands each command a context, prints, and turns every failure into
 * one `ferry: <reason>` line and an exit code from the table. Commands do the work elsewhere.
 */
export interface CliIo {
  env: Record<string, string | undefined>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** The terminal (stdin and stderr) when ferry runs on one: progress bars and prompts. */
  terminal?: Terminal | null;
  /** Standard input and output as bytes, for `-` as a file. */
  data?: DataStreams | null;
}

function helpFooter(): string {
  return [
    '',
    'License server:',
    '  --server URL, else the server that issued this machine\'s license, else FERRY_SERVER,',
    '  else "server" in $FERRY_HOME/config.json.',
    '',
    'Environment:',
    '  FERRY_HOME        where ferry keeps its license, settings and usage spool',
    '                    (default $XDG_CONFIG_HOME/ferry, or ~/.config/ferry)',
    '  FERRY_SERVER      license server URL when --server is not given',
    '  FERRY_MACHINE_ID  replaces the OS machine id (for tests; development builds only, a release ignores it)',
    '  FERRY_NOW         replaces the clock\'s time, ISO date or ms since 1970 (for tests; development builds only)',
    '  FERRY_UPTIME      replaces the time since boot, ms (for tests; development builds only)',
    '  FERRY_TRUST_ROOT  development builds: the root public key (PEM file) licenses must be certified by',
    '  FERRY_PASSWORD    SFTP password for scripts (otherwise asked on the terminal; never a flag)',
    '  FERRY_KEY_PASSPHRASE  passphrase of an encrypted private key, for scripts',
    '  FERRY_RETRIES, FERRY_PARALLEL, FERRY_CONNECTIONS  defaults for --retries, --parallel, --connections',
    '  FERRY_TIMEOUT     default for --timeout (seconds)',
    '  SSH_AUTH_SOCK     ssh-agent to offer keys from',
    '',
    'Remote paths:',
    '  sftp://[user@]host[:port]/abs/path   sftp://host/~/path is relative to the login folder',
    '  site:path          a site of $FERRY_HOME/config.json ("sites": {"name": {host, port, user, key, folder}})',
    '  [user@]host:path   as scp: host may be an alias of ~/.ssh/config (HostName, Port, User,',
    '                     IdentityFile, ProxyJump; Host, Match and Include as ssh reads them)',
    '  A destination ending in "/" is a folder; "dir/" as a source means the contents of dir.',
    '  Host keys are checked against ~/.ssh/known_hosts and $FERRY_HOME/known_hosts before logging in.',
    '',
    'Run "ferry privacy" to see what ferry reports during a trial.',
    '',
    'Exit codes:',
    exitCodeTable(),
  ].join('\n');
}

/**
 * Each command's module is loaded when that command runs: a transfer does not load the activation
 * code, and `ferry status` does not load ssh2 (about 50 ms of every start).
 */
const activation = () => import('./commands/activation.js');
/**
 * The transfer commands, loaded when one runs. Each checks the license, which needs this machine's
 * identity: asked for first, so that where the OS id comes from node-machine-id's shell (machine.ts:
 * not on Linux) it runs while the transfer code loads.
 */
const transfers = (ctx: AgentContext) => {
  ctx.machine().catch(() => undefined);
  return import('./commands/transfer.js');
};
const updates = () => import('./commands/update.js');

type Run = (command: Command, work: (ctx: AgentContext) => Promise<void>, options?: { updateNotice?: boolean }) => Promise<void>;

function buildProgram(io: CliIo, version: string, run: Run): Command {
  const program = new Command('ferry')
    .description('Ferry: licensed SFTP file transfer')
    .version(version, '-V, --version', 'print the version of ferry')
    .helpOption('-h, --help', 'show this help')
    .helpCommand(false)
    .option('--server <url>', 'license server URL')
    .exitOverride()
    .configureOutput({
      writeOut: io.stdout,
      writeErr: io.stderr,
      // The message quotes the arguments, which may hold anything: one line, through printable.
      outputError: (message, write) => write(`ferry: ${printable(oneLine(message.replace(/^error: /, '')))} (see "ferry --help")\n`),
    })
    .addHelpText('after', helpFooter());

  program
    .command('activate')
    .description('activate ferry on this machine: a trial, or a license key')
    .option('--trial', 'start this machine\'s trial (one per machine)')
    .option('--key <key>', 'activate a purchased license key')
    .option('--email <address>', 'with --trial: your email, for registration reminders')
    .option('--marketing', 'with --email: also send news and offers')
    .option('--i-am-13-or-older', 'with --email: confirm you are 13 or older (asked on a terminal; required otherwise)')
    .action((options: ActivateOptions, command: Command) => run(command, async (ctx) => (await activation()).activate(ctx, options)));

  program
    .command('status')
    .description('show this machine\'s license; renews its lease when due')
    .option('--json', 'print one JSON object')
    .action((options: { json?: boolean }, command: Command) => run(command, async (ctx) => (await import('./commands/status.js')).status(ctx, options)));

  program
    .command('deactivate')
    .description('free this machine\'s seat and remove its license')
    .action((_options: unknown, command: Command) => run(command, async (ctx) => (await activation()).deactivate(ctx)));

  program
    .command('privacy')
    .description('show exactly what ferry reports, and this machine\'s values')
    .action((_options: unknown, command: Command) => run(command, async (ctx) => (await import('./commands/privacy.js')).privacy(ctx)));

  program
    .command('version')
    .description('show the version and build of ferry, and the trust root it checks releases with')
    .action((_options: unknown, command: Command) => run(command, async (ctx) => (await updates()).version(ctx)));

  program
    .command('update')
    .description('replace ferry with the newest release of the license server (checked against the built-in trust root)')
    .action((_options: unknown, command: Command) => run(command, async (ctx) => (await updates()).update(ctx), { updateNotice: false }));

  program
    .command('verify-install')
    .description('check this installation against its signed release manifest and record the license server (install.sh runs it)')
    .action((_options: unknown, command: Command) => {
      const { server } = command.optsWithGlobals<{ server?: string }>();
      return run(command, async (ctx) => (await updates()).verifyInstall(ctx, server ?? ''), { updateNotice: false });
    });

  const connection = (command: Command) =>
    command
      .option('-i, --identity <file>', 'private key to log in with (as ssh -i)')
      .option('-P, --port <port>', 'SSH port, when the URL names none')
      .option('-J, --jump <hosts>', 'connect through jump hosts, [user@]host[:port][,...] (as ssh -J)')
      .option('--accept-new', 'trust an unknown host key on first use (recorded in $FERRY_HOME/known_hosts)')
      .option('--timeout <seconds>', 'a server that answers no request (or no login) for this long has stopped (FERRY_TIMEOUT; default 30)')
      .option('-q, --quiet', 'no progress and no notices, only errors')
      .option('-v, --verbose', 'say what ferry does on stderr: connection, host key, login, server extensions, concurrency (-vv: each file too)', (_value: string, count: number) => count + 1, 0)
      .option('--json', 'one JSON object per line on stdout');
  const transfer = (command: Command) => {
    // --exclude and --include fill one list, in the order given: the first rule that matches decides.
    const rules: FilterRule[] = [];
    const rule = (include: boolean) => (pattern: string) => (rules.push({ include, pattern }), rules);
    return connection(command)
      .option('--progress', 'show progress lines even when not on a terminal (running totals every 2 s)')
      .option('--bwlimit <rate>', 'at most RATE bytes per second for the whole run, as rclone: 500K, 10M, 1G (binary; a bare number is KiB); UP:DOWN for each way')
      .addOption(new Option('--exclude <pattern>', 'leave out files and folders matching the glob (repeatable; see README)').argParser(rule(false)))
      .addOption(new Option('--include <pattern>', 'copy only what matches, with the --exclude rules in the order given (repeatable)').argParser(rule(true)))
      .option('--parallel <n>', 'files in flight at once (FERRY_PARALLEL; default 32)')
      .option('--connections <n>', 'SSH connections the files share (FERRY_CONNECTIONS; default 1)')
      .option('--retries <n>', 'retries after a lost connection, resuming (FERRY_RETRIES; default 5)')
      .option('--resume', 'continue part files left by an interrupted earlier run, verified whole against the source (--resume=size: trusted by their size)')
      .addOption(new Option('--resume-by <check>').hideHelp())
      .option('-p, --preserve', 'also keep permissions (modification times are always kept)');
  };

  transfer(program.command('put').description('upload files (and folders with -r) to an SFTP server'))
    .argument('<paths...>', 'LOCAL... (- for standard input) then DESTINATION (sftp://user@host/path, site:path)')
    .option('-r, --recursive', 'copy folders and everything in them')
    .action((paths: string[], options: TransferFlags, command: Command) => run(command, async (ctx) => (await transfers(ctx)).put(ctx, paths, options)));

  transfer(program.command('get').description('download files (and folders with -r) from an SFTP server'))
    .argument('<paths...>', 'REMOTE... (globs allowed) then a LOCAL destination (- for standard output)')
    .option('-r, --recursive', 'copy folders and everything in them')
    .action((paths: string[], options: TransferFlags, command: Command) => run(command, async (ctx) => (await transfers(ctx)).get(ctx, paths, options)));

  transfer(program.command('sync').description('mirror a folder to or from an SFTP server, by size and time (or content)'))
    .argument('<source>', 'the folder to mirror (local or remote)')
    .argument('<destination>', 'the folder made like it (the other side)')
    .option('--delete', 'remove what the source does not have')
    .option('-c, --checksum', 'compare files of the same size by content, not time')
    .option('-n, --dry-run', 'print the plan and change nothing')
    .action((source: string, destination: string, options: SyncFlags, command: Command) => run(command, async (ctx) => (await transfers(ctx)).sync(ctx, [source, destination], options)));

  // -h is human sizes here, as in ls -lh; help stays --help.
  connection(program.command('ls').description('list a remote folder').helpOption('--help', 'show this help'))
    .argument('<paths...>', 'sftp://user@host/path (globs allowed)')
    .option('-l, --long', 'mode, owner, group, size and modification time')
    .option('-h, --human-readable', 'with -l: sizes as 1.5K, 12M, 3.0G (powers of 1024)')
    .option('-r, --recursive', 'everything below, with relative paths')
    .action((paths: string[], options: ListFlags, command: Command) => run(command, async (ctx) => (await transfers(ctx)).ls(ctx, paths, options)));

  connection(program.command('mkdir').description('make remote folders'))
    .argument('<paths...>', 'sftp://user@host/path')
    .option('-p, --parents', 'make missing parents too; an existing folder is fine')
    .action((paths: string[], options: MkdirFlags, command: Command) => run(command, async (ctx) => (await transfers(ctx)).mkdir(ctx, paths, options)));

  connection(program.command('rm').description('remove remote files (and folders with -r)'))
    .argument('<paths...>', 'sftp://user@host/path (globs allowed)')
    .option('-r, --recursive', 'remove folders and everything in them')
    .action((paths: string[], options: TransferFlags, command: Command) => run(command, async (ctx) => (await transfers(ctx)).rm(ctx, paths, options)));

  connection(program.command('mv').description('move or rename on the SFTP server'))
    .argument('<paths...>', 'SOURCE... then DESTINATION, on one server (a bare /path means the same server)')
    .action((paths: string[], options: TransferFlags, command: Command) => run(command, async (ctx) => (await transfers(ctx)).mv(ctx, paths, options)));

  return program;
}

/**
 * `--resume=size` as Commander can take it: `--resume` stays a flag (an optional value would take
 * the next path as its value), and the value goes to a hidden option of its own.
 */
function resumeValue(argv: string[]): string[] {
  const end = argv.indexOf('--');
  return argv.flatMap((arg, i) => (arg.startsWith('--resume=') && (end === -1 || i < end) ? ['--resume', `--resume-by=${arg.slice('--resume='.length)}`] : [arg]));
}

/** Runs ferry with `argv` (as process.argv) and returns the exit code. Never throws. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  try {
    const agentVersion = readAgentVersion();
    const run: Run = async (command, work, options = {}) => {
      const { server } = command.optsWithGlobals<{ server?: string }>();
      const ctx = await createContext({ env: io.env, serverOption: server, agentVersion, stdout: io.stdout, stderr: io.stderr, terminal: io.terminal ?? null, data: io.data ?? null });
      if (ctx.clock.setBack && ctx.clock.highWater !== null) {
        const { wallNow, highWater, now } = ctx.clock;
        ctx.notice(`the clock was set back: it says ${formatTime(wallNow)}, but ${formatTime(highWater)} was seen before; licenses go by ${formatTime(now)}`);
      }
      try {
        await work(ctx);
      } finally {
        await ctx.settle();
      }
      // A notice is a nicety: it never fails the command it follows.
      if (options.updateNotice !== false) await updateNotice(ctx, command.optsWithGlobals<NoticeFlags>()).catch(() => undefined);
    };
    const program = buildProgram(io, agentVersion, run);
    if (argv.length <= 2) {
      program.outputHelp({ error: true });
      return exitCodeOf('USAGE');
    }
    await program.parseAsync(resumeValue(argv));
    return exitCodeOf('OK');
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version end with 0; every parse error has been printed already.
      return err.exitCode === 0 ? exitCodeOf('OK') : exitCodeOf('USAGE');
    }
    const failure = describeFailure(err);
    io.stderr(`ferry: ${failure.message}\n`);
    return failure.exitCode;
  }
}
