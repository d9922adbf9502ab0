import { stdout } from 'node:process';

export async function runDemoCommand(args: string[]): Promise<number> {
  if (args.includes('--help')) {
    stdout.write('Usage: tunstack demo [--out FILE]\n');
    return 0;
  }
  stdout.write('tunstack demo: the stack is not built yet; see README.md for what exists.\n');
  return 0;
}
