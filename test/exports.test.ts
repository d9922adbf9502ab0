/**
 * The package's entry points, from the sources: package.json "exports" names exactly the entries
 * of tools/entries.ts, README's "Package entry points" lists exactly what each exports, the
 * values listed are what the module gives at run time, and no entry exports an internal.
 * (test/install.test.ts checks the same entries in the packed, installed package.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ENTRIES } from '../tools/entries.js';
import { ROOT, currentBlock, entryExports, readmeBlock } from '../tools/exports.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  exports: Record<string, unknown>;
  typesVersions: Record<string, Record<string, string[]>>;
  types: string;
  main: string;
};
const list = entryExports();
const dist = (source: string, ext: string): string => `./${source.replace(/^src\//, 'dist/').replace(/\.ts$/, ext)}`;

/** What the stack keeps to itself; none of these may reach a consumer. */
const INTERNALS = [
  'SendBlock', 'takeBlock', 'sendBlocksInUse', 'BLOCK_SIZE', 'BufferLease', 'Reassembler', 'TunQueue', 'TunQueueReader',
  'setNativeBinding', 'Trampoline', 'Ring', 'NumberRing', 'TimeWaitRecord', 'TableEntry', 'MemoryHolder', 'DeliveryTarget',
  'etherCrc', 'flowHash', 'runBpf', 'checkBpfProgram', 'icmpv6Errno', 'setDefaultProtocols', 'setRawFactories', 'setTunFactory',
  'rawFactories', 'NeighborProber', 'NicPacketObserver', 'Cubic', 'Reno',
];

describe('package entry points', () => {
  it('package.json "exports" maps each entry (and only those) to its built module and types', () => {
    const expected: Record<string, unknown> = {};
    for (const e of ENTRIES) {
      const key = e.specifier === 'tunstack' ? '.' : `./${e.specifier.slice('tunstack/'.length)}`;
      expected[key] = { types: dist(e.source, '.d.ts'), default: dist(e.source, '.js') };
    }
    expected['./package.json'] = './package.json';
    expect(pkg.exports).toEqual(expected);
    expect([pkg.main, pkg.types]).toEqual([dist(ENTRIES[0]!.source, '.js'), dist(ENTRIES[0]!.source, '.d.ts')]);
    const versions: Record<string, string[]> = {};
    for (const e of ENTRIES.slice(1)) versions[e.specifier.slice('tunstack/'.length)] = [dist(e.source, '.d.ts')];
    expect(pkg.typesVersions).toEqual({ '*': versions });
  });

  it("README's lists are the entries' exports (rewrite with `npx tsx tools/exports.ts --write`)", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    expect(currentBlock(readme)).toBe(readmeBlock(list));
  });

  it('no entry exports an internal', () => {
    for (const { entry, values, types } of list) {
      expect(
        [...values, ...types].filter((n) => INTERNALS.includes(n)),
        entry.specifier,
      ).toEqual([]);
    }
  });

  it('the values listed are what each module gives at run time', async () => {
    for (const { entry, values } of list) {
      const mod = (await import(pathToFileURL(join(ROOT, entry.source)).href)) as Record<string, unknown>;
      expect(Object.keys(mod).sort(), entry.specifier).toEqual([...values].sort());
      for (const v of values) expect(mod[v], `${entry.specifier} ${v}`).toBeDefined();
    }
  });
});
