#!/usr/bin/env node
/** The `tunstack` command. */
import { argv, exit, stdout, stderr } from 'node:process';
import { version } from './args.js';

const HELP = `tunstack: a userspace TCP/IP stack with a virtual /dev/net/tun

Usage: tunstack <command> [options]

Commands:
  demo        two virtual hosts on a wire: ARP, ping, UDP; writes pcaps/demo.pcap
  flow        ladder diagram (text or SVG) of a capture's TCP/UDP/ICMP/ARP exchanges
  replay      replay a capture into a stack that plays one of its hosts; compare answers
  sandbox     run a command in a network namespace whose network tunstack serves (root)
  vm          serve a virtual machine's network over a socket (QEMU stream framing)
  version     print tunstack's version (also -V, --version, with any command)
  help        show this help

Run "tunstack <command> --help" for a command's options. Options take their value as
--name value or --name=value. Exit status: 0 done, 1 failure, 2 usage error; sandbox and vm
exit with the command's own status (127 when it cannot be run).
`;

export async function main(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  switch (cmd) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      stdout.write(HELP);
      return 0;
    case 'version':
    case '--version':
    case '-V':
      stdout.write(`tunstack ${version()}\n`);
      return 0;
    case 'demo': {
      const { runDemoCommand } = await import('./demo.js');
      return runDemoCommand(rest);
    }
    case 'flow': {
      const { runFlowCommand } = await import('./flow.js');
      return runFlowCommand(rest);
    }
    case 'replay': {
      const { runReplayCommand } = await import('./replay.js');
      return runReplayCommand(rest);
    }
    case 'sandbox': {
      const { runSandboxCommand } = await import('./sandbox.js');
      return runSandboxCommand(rest);
    }
    case 'vm': {
      const { runVmCommand } = await import('./vm.js');
      return runVmCommand(rest);
    }
    default:
      stderr.write(`tunstack: unknown command "${cmd}"\n\n${HELP}`);
      return 2;
  }
}

main(argv.slice(2)).then(
  (code) => exit(code),
  (err: unknown) => {
    stderr.write(`tunstack: ${err instanceof Error ? err.message : String(err)}\n`);
    exit(1);
  },
);
