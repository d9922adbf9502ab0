#!/usr/bin/env node
/**
 * Prebuilt addons for the package (run by `npm pack` / `npm publish` through "prepack"):
 * prebuilds/linux-x64/tunstack.node and prebuilds/linux-arm64/tunstack.node, compiled from
 * native/tunstack.c in a scratch directory (native/build is left alone) and stripped. The arm64 one
 * is cross-compiled with Debian's gcc-aarch64-linux-gnu when this machine is x64 (and the reverse).
 * A target that cannot be built fails the pack, unless TUNSTACK_PREBUILD_OPTIONAL=1.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prebuiltPath, runGyp } from './gyp.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const optional = process.env.TUNSTACK_PREBUILD_OPTIONAL === '1';
/** Toolchain prefixes for a target CPU when it is not this machine's. */
const cross = { arm64: 'aarch64-linux-gnu-', x64: 'x86_64-linux-gnu-' };

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

let failures = 0;
for (const arch of ['x64', 'arm64']) {
  const native = arch === process.arch;
  const prefix = native ? '' : cross[arch];
  if (process.platform !== 'linux' || (!native && !have(`${prefix}gcc`))) {
    console.log(`tunstack prebuild: linux-${arch} skipped (${process.platform !== 'linux' ? 'not Linux' : `${prefix}gcc missing: apt-get install gcc-${prefix.slice(0, -1)}`})`);
    failures++;
    continue;
  }
  const dir = mkdtempSync(join(tmpdir(), `tunstack-prebuild-${arch}-`));
  try {
    copyFileSync(join(here, 'tunstack.c'), join(dir, 'tunstack.c'));
    copyFileSync(join(here, 'binding.gyp'), join(dir, 'binding.gyp'));
    const env = native ? {} : { CC: `${prefix}gcc`, CXX: `${prefix}gcc`, LINK: `${prefix}gcc`, AR: `${prefix}ar` };
    const failed = runGyp(dir, native ? [] : [`--arch=${arch}`], env);
    if (failed !== null) {
      console.log(`tunstack prebuild: linux-${arch} failed:\n  ${failed}`);
      failures++;
      continue;
    }
    const out = prebuiltPath(root, 'linux', arch);
    mkdirSync(dirname(out), { recursive: true });
    copyFileSync(join(dir, 'build', 'Release', 'tunstack.node'), out);
    spawnSync(have(`${prefix}strip`) ? `${prefix}strip` : 'strip', ['--strip-unneeded', out]);
    console.log(`tunstack prebuild: ${out}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
if (failures > 0 && !optional) {
  console.log('tunstack prebuild: not every target was built (TUNSTACK_PREBUILD_OPTIONAL=1 packs without them)');
  process.exit(1);
}
