/**
 * The package as a consumer gets it: `npm pack` (which builds dist/ and the prebuilt addons for
 * linux-x64 and linux-arm64), then `npm install` of the tarball into a fresh project. Nothing is
 * compiled there (npm 11 does not even run a dependency's install script unless allowed), the
 * prebuilt addon loads, a second install leaves package-lock.json as it was, and without a
 * prebuilt the error names a command that works from that project.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = mkdtempSync(join(tmpdir(), 'tunstack-install-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const haveNpm = spawnSync('npm', ['--version'], { encoding: 'utf8' }).status === 0;
const haveCross = spawnSync('sh', ['-c', 'command -v aarch64-linux-gnu-gcc']).status === 0;
const linuxX64 = process.platform === 'linux' && process.arch === 'x64';
if (!haveNpm) console.warn('test/install.test.ts: skipped: npm not found');
else if (!linuxX64) console.warn(`test/install.test.ts: skipped: the check loads the linux-x64 prebuilt, and this is ${process.platform}-${process.arch}`);
if (haveNpm && !haveCross) console.warn('test/install.test.ts: the linux-arm64 prebuild is not checked: aarch64-linux-gnu-gcc missing (Debian: gcc-aarch64-linux-gnu)');

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): { status: number; out: string; stdout: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 240_000, env: { ...process.env, ...env } });
  return { status: r.status ?? -1, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, stdout: r.stdout ?? '' };
}

/** ELF e_machine of a shared object: 62 x86-64, 183 AArch64. */
function elfMachine(path: string): number {
  const b = readFileSync(path);
  expect(b.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  return b.readUInt16LE(18);
}

function reasonIn(app: string): string {
  const r = run(process.execPath, ['--input-type=module', '-e', "import('tunstack').then((m) => process.stdout.write(JSON.stringify(m.nativeUnavailableReason())))"], app);
  expect(r.status, r.out).toBe(0);
  return JSON.parse(r.stdout) as string;
}

describe.skipIf(!haveNpm || !linuxX64)('the package from npm pack, installed into a fresh project', () => {
  it('ships prebuilt addons, compiles nothing, loads the prebuilt, keeps the lock file stable', () => {
    const pack = run('npm', ['pack', '--pack-destination', dir], ROOT, haveCross ? {} : { TUNSTACK_PREBUILD_OPTIONAL: '1' });
    expect(pack.status, pack.out).toBe(0);
    const tgz = join(dir, pack.stdout.trim().split('\n').pop()!.trim());
    expect(existsSync(tgz), tgz).toBe(true);
    const list = run('tar', ['-tzf', tgz], dir).out.split('\n');
    expect(list).toContain('package/prebuilds/linux-x64/tunstack.node');
    if (haveCross) expect(list).toContain('package/prebuilds/linux-arm64/tunstack.node');
    expect(list.filter((f) => f.includes('native/build/'))).toEqual([]);

    const app = join(dir, 'app');
    run('mkdir', ['-p', app], dir);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
    const install = run('npm', ['install', '--no-audit', '--no-fund', tgz], app);
    expect(install.status, install.out).toBe(0);
    const pkg = join(app, 'node_modules', 'tunstack');
    expect(existsSync(join(pkg, 'native', 'build')), 'nothing compiled').toBe(false);
    expect(elfMachine(join(pkg, 'prebuilds', 'linux-x64', 'tunstack.node'))).toBe(62);
    if (haveCross) expect(elfMachine(join(pkg, 'prebuilds', 'linux-arm64', 'tunstack.node'))).toBe(183);
    expect(reasonIn(app)).toBe('');
    // CommonJS consumers: require(esm), on by default from Node 20.19 (and 22.12).
    const [maj, min] = process.versions.node.split('.').map(Number) as [number, number];
    if (maj > 22 || (maj === 22 && min >= 12) || (maj === 20 && min >= 19)) {
      const cjs = run(process.execPath, ['-e', "process.stdout.write(typeof require('tunstack').Stack)"], app);
      expect(cjs.stdout, cjs.out).toBe('function');
    }

    const lock = readFileSync(join(app, 'package-lock.json'), 'utf8');
    const again = run('npm', ['install', '--no-audit', '--no-fund'], app);
    expect(again.status, again.out).toBe(0);
    expect(readFileSync(join(app, 'package-lock.json'), 'utf8')).toBe(lock);

    // No prebuilt for this machine: the reason names a command that works here, and it does.
    renameSync(join(pkg, 'prebuilds'), join(dir, 'prebuilds-aside'));
    const why = reasonIn(app);
    expect(why).toContain('npm rebuild tunstack --foreground-scripts');
    const rebuild = run('npm', ['rebuild', 'tunstack', '--foreground-scripts'], app);
    expect(rebuild.status, rebuild.out).toBe(0);
    expect(existsSync(join(pkg, 'native', 'build', 'Release', 'tunstack.node'))).toBe(true);
    expect(reasonIn(app)).toBe('');
  }, 480_000);
});
