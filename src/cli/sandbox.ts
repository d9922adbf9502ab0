/** `tunstack sandbox [options] -- COMMAND ...`: run a command with a network served by tunstack. */
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { join } from 'node:path';
import { stderr, stdout } from 'node:process';
import { parseArgs } from 'node:util';
import type { PortForward } from '../sandbox/network.js';
import { usageError, version, type OptionSpec, type Parsed } from './args.js';
import { GUEST_NETWORK_HELP, GUEST_NETWORK_OPTIONS, bytesArg, guestNetworkFromValues, parsePublishRange, type GuestNetwork } from './guest-options.js';

export const SANDBOX_HELP = `Usage: tunstack sandbox [options] -- COMMAND [ARGS...]
       tunstack sandbox [options] --netns PID|PATH [--userns PID|PATH] [--ifname NAME]

Run COMMAND in a new network namespace whose only link (besides lo) is a TAP served by
tunstack in this process (as slirp4netns does), and exit with COMMAND's exit status.

The guest sees:
  eth0       10.0.2.100/24 and fd00::100/64 (router advertisements announce fd00::/64)
  gateway    10.0.2.2, fd00::2: connections to it reach the host's loopback
  DNS        10.0.2.3, fd00::3: answered with the host's resolver (/etc/hosts included)
  DHCP       answers for 10.0.2.100.. (router, DNS, MTU, lease) for guests that ask
Guest TCP and UDP to any other address are relayed through host sockets; ICMP echo is relayed
through the host's ping(8) where this process may ping, else only the gateway answers.
Traffic the guest addresses to the host itself is never relayed: 127.0.0.0/8, 0.0.0.0/8, ::1,
:: and their IPv4-mapped/compatible forms (::ffff:127.0.0.1, ::127.0.0.1); the gateway is the
only way to the host's loopback. The host's interface addresses stay reachable (as with
slirp4netns) unless --disable-host-addresses.
COMMAND runs in its own PID namespace and dies with tunstack, even when tunstack is killed
with SIGKILL (needs util-linux setpriv and unshare 2.32+); a later sandbox reports and
removes what such a tunstack left.

Options:
  --no-configure             leave the interface unconfigured (the guest runs DHCP itself)
  -I, --ifname NAME          the guest interface's name (default eth0; tap0 with --netns)
  -M, --mac-address MAC      the guest interface's MAC address (default a random one)
  --enable-seccomp           deny tunstack itself system calls a relay never needs (ptrace,
                             bpf, kernel modules, kexec, keyrings, ...) with a seccomp filter,
                             installed once COMMAND runs (COMMAND is not filtered)
  -V, --version              print tunstack's version
  -h, --help                 this help

${GUEST_NETWORK_HELP}
Serving a namespace someone else made (as slirp4netns PID tap0, pasta PID), no COMMAND:
  --netns PID|PATH           serve this network namespace: PID's, or a namespace file such as
                             /run/netns/NAME; a TAP named IFNAME is put in it and configured
                             (unless --no-configure). Exits when it is gone: PID has exited, or
                             PATH no longer names the same namespace (unmounted, deleted)
  --userns PID|PATH          the user namespace owning it, entered to configure it
  --pid-file FILE            write tunstack's pid to FILE (removed at exit)
  --ready-fd N               write "1" to fd N once the network is up, then close it
  --exit-fd N                exit when fd N becomes readable or its other end is closed
  --api-socket PATH          slirp4netns's JSON API on a Unix socket: add_hostfwd,
                             list_hostfwd, remove_hostfwd (one request per connection)
A second tunstack on the same namespace is refused (exit 1).

Options take their value as --mtu 9000 or --mtu=9000; the first word that is not an option
starts COMMAND ("--" before it is clearer). Exit status: COMMAND's, 127 when it is not found
and 126 when it cannot be run (as env(1)),
128 + N when a signal N ended it, 1 when the sandbox could not be made, 2 for usage errors;
with --netns: 0 when the namespace is gone or tunstack was told to stop, 1 when it could not
serve it.

Runs as root, or rootless as any user (then /dev/net/tun must be mode 0666 and the kernel
must allow unprivileged user namespaces); needs iproute2, util-linux and tunstack's native shim.
Example: tunstack sandbox -p 8080:80 -- sh -c 'python3 -m http.server 80'
`;

export interface SandboxArgs {
  command: string[];
  guest: GuestNetwork;
  configure: boolean;
  help?: boolean;
  version?: boolean;
  ifname?: string;
  mac?: string;
  netns?: string;
  userns?: string;
  pidFile?: string;
  readyFd?: number;
  exitFd?: number;
  apiSocket?: string;
  seccomp?: boolean;
}

const SANDBOX_OPTIONS = {
  ...GUEST_NETWORK_OPTIONS,
  'no-configure': { type: 'boolean' },
  'enable-seccomp': { type: 'boolean' },
  ifname: { type: 'string', short: 'I' },
  'mac-address': { type: 'string', short: 'M' },
  netns: { type: 'string' },
  userns: { type: 'string' },
  'pid-file': { type: 'string' },
  'ready-fd': { type: 'string' },
  'exit-fd': { type: 'string' },
  'api-socket': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const satisfies OptionSpec;

/** Parse `-p [IP:]HOSTPORT:GUESTPORT[/proto]` (one port each side). Throws on bad input. */
export function parsePublish(spec: string): PortForward {
  const all = parsePublishRange(spec);
  if (all.length !== 1) throw new Error(`bad --publish "${spec}" (one port wanted here)`);
  return all[0]!;
}

export { bytesArg };

/**
 * Where COMMAND starts in `args`: the first positional word (or the word after "--"), found with
 * parseArgs's tokens so that option values (`--pcap x`) are not taken for it.
 */
export function splitCommand(args: string[]): { options: string[]; command: string[] } {
  const { tokens } = parseArgs({ args, options: SANDBOX_OPTIONS, strict: false, allowPositionals: true, tokens: true });
  for (const t of tokens) {
    if (t.kind === 'option-terminator') return { options: args.slice(0, t.index), command: args.slice(t.index + 1) };
    if (t.kind === 'positional') return { options: args.slice(0, t.index), command: args.slice(t.index) };
  }
  return { options: args, command: [] };
}

function fd(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 0 || n > 1 << 20) throw new Error(`--${name} wants an integer, a file descriptor (got "${v}")`);
  return n;
}

/** Parse the command line (everything after "sandbox"). Throws Error with a message on bad input. */
export function parseSandboxArgs(args: string[]): SandboxArgs {
  const { options, command } = splitCommand(args);
  let values: Parsed<typeof SANDBOX_OPTIONS>['values'];
  try {
    values = parseArgs({ args: options, options: SANDBOX_OPTIONS, strict: true, allowPositionals: false }).values as Parsed<typeof SANDBOX_OPTIONS>['values'];
  } catch (e) {
    throw new Error((e as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  const v = values;
  for (const name of ['pcap', 'netns', 'userns', 'ifname', 'pid-file', 'api-socket'] as const) {
    if (v[name] === '') throw new Error(`--${name} wants a ${name === 'ifname' ? 'name' : name === 'pcap' || name === 'pid-file' ? 'file name' : 'value'}`);
  }
  if (v['mac-address'] !== undefined) {
    const mac = v['mac-address'];
    if (!/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(mac) || (parseInt(mac.slice(0, 2), 16) & 1) === 1) throw new Error(`--mac-address wants a unicast MAC such as 02:00:00:00:00:01 (got "${mac}")`);
  }
  const out: SandboxArgs = { command, guest: guestNetworkFromValues(v), configure: v['no-configure'] !== true };
  if (v.help === true) out.help = true;
  if (v.version === true) out.version = true;
  if (v['enable-seccomp'] === true) out.seccomp = true;
  const copy = { ifname: 'ifname', mac: 'mac-address', netns: 'netns', userns: 'userns', pidFile: 'pid-file', apiSocket: 'api-socket' } as const;
  for (const [k, name] of Object.entries(copy) as Array<[keyof typeof copy, (typeof copy)[keyof typeof copy]]>) {
    const x = v[name];
    if (x !== undefined) out[k] = x;
  }
  const readyFd = fd('ready-fd', v['ready-fd']);
  const exitFd = fd('exit-fd', v['exit-fd']);
  if (readyFd !== undefined) out.readyFd = readyFd;
  if (exitFd !== undefined) out.exitFd = exitFd;
  return out;
}

/**
 * Where `command` would be run from, as env(1) finds it: null when it is not found (127); the
 * path and whether it may be executed otherwise (126 when not).
 */
export function findCommand(command: string, path = process.env.PATH ?? '/usr/bin:/bin'): { path: string; executable: boolean } | null {
  const check = (p: string): { path: string; executable: boolean } | null => {
    try {
      if (!statSync(p).isFile()) return { path: p, executable: false };
    } catch {
      return null;
    }
    try {
      accessSync(p, fsConstants.X_OK);
      return { path: p, executable: true };
    } catch {
      return { path: p, executable: false };
    }
  };
  if (command.includes('/')) return check(command);
  let found: { path: string; executable: boolean } | null = null;
  for (const dir of path.split(':')) {
    const r = check(join(dir === '' ? '.' : dir, command));
    if (r?.executable === true) return r;
    found ??= r;
  }
  return found;
}

export async function runSandboxCommand(args: string[]): Promise<number> {
  let parsed: SandboxArgs;
  try {
    parsed = parseSandboxArgs(args);
  } catch (e) {
    return usageError('sandbox', SANDBOX_HELP, (e as Error).message);
  }
  if (parsed.help === true) {
    stdout.write(SANDBOX_HELP);
    return 0;
  }
  if (parsed.version === true) {
    stdout.write(`tunstack ${version()}\n`);
    return 0;
  }
  const attachOnly = (['userns', 'pidFile', 'readyFd', 'exitFd', 'apiSocket'] as const).filter((k) => parsed[k] !== undefined);
  if (parsed.netns === undefined && attachOnly.length > 0) {
    return usageError('sandbox', SANDBOX_HELP, `--${attachOnly[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} needs --netns`);
  }
  if (parsed.netns !== undefined && parsed.command.length > 0) {
    return usageError('sandbox', SANDBOX_HELP, `--netns serves an existing namespace and runs no COMMAND (got ${parsed.command[0]!})`);
  }
  if (parsed.netns === undefined && parsed.command.length === 0) return usageError('sandbox', SANDBOX_HELP, 'no command given');
  if (parsed.command.length > 0) {
    const found = findCommand(parsed.command[0]!);
    if (found === null || !found.executable) {
      stderr.write(`tunstack sandbox: ${parsed.command[0]}: ${found === null ? 'No such file or directory' : 'Permission denied'}\n`);
      return found === null ? 127 : 126;
    }
  }
  const { network, ports, logLevel } = parsed.guest;
  const common = {
    ...network,
    publish: ports.forwards,
    autoPorts: ports.auto,
    configure: parsed.configure,
    verbose: logLevel === 'info' || logLevel === 'debug',
    debug: logLevel === 'debug',
    quiet: logLevel === 'error',
    seccomp: parsed.seccomp === true,
    ...(parsed.ifname !== undefined ? { ifname: parsed.ifname } : {}),
    ...(parsed.mac !== undefined ? { mac: parsed.mac } : {}),
  };
  if (parsed.netns !== undefined) {
    const { attachSandbox } = await import('../sandbox/attach.js');
    try {
      return await attachSandbox({
        ...common,
        netns: parsed.netns,
        ...(parsed.userns !== undefined ? { userns: parsed.userns } : {}),
        ...(parsed.pidFile !== undefined ? { pidFile: parsed.pidFile } : {}),
        ...(parsed.readyFd !== undefined ? { readyFd: parsed.readyFd } : {}),
        ...(parsed.exitFd !== undefined ? { exitFd: parsed.exitFd } : {}),
        ...(parsed.apiSocket !== undefined ? { apiSocket: parsed.apiSocket } : {}),
      });
    } catch (e) {
      stderr.write(`tunstack sandbox: ${(e as Error).message}\n`);
      return 1;
    }
  }
  const { runSandbox } = await import('../sandbox/run.js');
  try {
    return await runSandbox({ command: parsed.command, ...common });
  } catch (e) {
    stderr.write(`tunstack sandbox: ${(e as Error).message}\n`);
    return 125;
  }
}
