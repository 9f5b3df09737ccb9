import { Command, CommanderError } from 'commander';
import { activate, deactivate, type ActivateOptions } from './commands/activation.js';
import { privacy } from './commands/privacy.js';
import { status } from './commands/status.js';
import { createContext, readAgentVersion, type AgentContext } from './context.js';
import { describeFailure } from './errors.js';
import { exitCodeOf, exitCodeTable } from './exit-codes.js';
import { formatTime } from './format.js';

/**
 * The command line: parses, hands each command a context, prints, and turns every failure into
 * one `ferry: <reason>` line and an exit code from the table. Commands do the work elsewhere.
 */
export interface CliIo {
  env: Record<string, string | undefined>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
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
    '  FERRY_MACHINE_ID  replaces the OS machine id (for tests and containers)',
    '  FERRY_NOW         replaces the clock\'s time, ISO date or ms since 1970 (for tests)',
    '',
    'Run "ferry privacy" to see what ferry reports during a trial.',
    '',
    'Exit codes:',
    exitCodeTable(),
  ].join('\n');
}

function buildProgram(io: CliIo, version: string, run: (command: Command, work: (ctx: AgentContext) => Promise<void>) => Promise<void>): Command {
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
      outputError: (message, write) => write(`ferry: ${message.replace(/^error: /, '').trim()} (see "ferry --help")\n`),
    })
    .addHelpText('after', helpFooter());

  program
    .command('activate')
    .description('activate ferry on this machine: a trial, or a license key')
    .option('--trial', 'start this machine\'s trial (one per machine)')
    .option('--key <key>', 'activate a purchased license key')
    .option('--email <address>', 'with --trial: your email, for registration reminders')
    .option('--marketing', 'with --email: also send news and offers')
    .action((options: ActivateOptions, command: Command) => run(command, (ctx) => activate(ctx, options)));

  program
    .command('status')
    .description('show this machine\'s license; renews its lease when due')
    .option('--json', 'print one JSON object')
    .action((options: { json?: boolean }, command: Command) => run(command, (ctx) => status(ctx, options)));

  program
    .command('deactivate')
    .description('free this machine\'s seat and remove its license')
    .action((_options: unknown, command: Command) => run(command, (ctx) => deactivate(ctx)));

  program
    .command('privacy')
    .description('show exactly what ferry reports, and this machine\'s values')
    .action((_options: unknown, command: Command) => run(command, (ctx) => privacy(ctx)));

  return program;
}

/** Runs ferry with `argv` (as process.argv) and returns the exit code. Never throws. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  try {
    const agentVersion = readAgentVersion();
    const run = async (command: Command, work: (ctx: AgentContext) => Promise<void>) => {
      const { server } = command.optsWithGlobals<{ server?: string }>();
      const ctx = await createContext({ env: io.env, serverOption: server, agentVersion, stdout: io.stdout, stderr: io.stderr });
      if (ctx.clock.setBack && ctx.clock.highWater !== null) {
        const { wallNow, highWater, now } = ctx.clock;
        ctx.notice(`the clock was set back: it says ${formatTime(wallNow)}, but ${formatTime(highWater)} was seen before; licenses go by ${formatTime(now)}`);
      }
      await work(ctx);
    };
    const program = buildProgram(io, agentVersion, run);
    if (argv.length <= 2) {
      program.outputHelp({ error: true });
      return exitCodeOf('USAGE');
    }
    await program.parseAsync(argv);
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
