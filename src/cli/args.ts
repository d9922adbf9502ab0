/**
 * One way to read every subcommand's arguments: `node:util` parseArgs (strict, `--x=y` and
 * `--x y` alike, `--` ends the options), plus what every subcommand answers the same way:
 * `-h/--help` (usage on stdout, status 0), `-V/--version` (status 0), and usage errors (the
 * message and the usage on stderr, status 2).
 */
import { readFileSync } from 'node:fs';
import { stderr, stdout } from 'node:process';
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** tunstack's version, from package.json (two levels above both src/cli and dist/cli). */
export function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export type Parsed<O extends OptionSpec> = {
  values: { [K in keyof O]?: O[K] extends { type: 'boolean' } ? boolean : O[K] extends { multiple: true } ? string[] : string };
  positionals: string[];
};

/** A usage error: the message, then the usage, on stderr; returns 2. */
export function usageError(command: string, usage: string, why: string): number {
  stderr.write(`tunstack ${command}: ${why}\n\n${usage}`);
  return 2;
}

/**
 * Parse `args` for `tunstack <command>`. Returns the values, or a number: the exit status when the
 * command is done already (help, version, usage error).
 */
export function parseCommand<O extends OptionSpec>(command: string, usage: string, options: O, args: string[]): Parsed<O> | number {
  const all = { ...options, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'V' } } as const;
  let r: { values: Record<string, string | boolean | Array<string | boolean> | undefined>; positionals: string[] };
  try {
    r = parseArgs({ args, options: all as OptionSpec, strict: true, allowPositionals: true });
  } catch (e) {
    const msg = e instanceof Error ? e.message.replace(/\. To specify a positional argument.*$/s, '') : String(e);
    return usageError(command, usage, msg);
  }
  if (r.values.help === true) {
    stdout.write(usage);
    return 0;
  }
  if (r.values.version === true) {
    stdout.write(`tunstack ${version()}\n`);
    return 0;
  }
  return r as unknown as Parsed<O>;
}

/** A number option: undefined when absent, NaN-free; `null` (after printing a usage error) when bad. */
export function numberOption(
  command: string,
  usage: string,
  name: string,
  raw: string | undefined,
  check: (n: number) => boolean,
  what: string,
): number | undefined | null {
  if (raw === undefined) return undefined;
  const n = raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(n) || !check(n)) {
    usageError(command, usage, `--${name} needs ${what} (got "${raw}")`);
    return null;
  }
  return n;
}
