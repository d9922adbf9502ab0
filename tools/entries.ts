/**
 * The package's entry points: each subpath of package.json "exports" with the source file it is
 * built from. test/exports.test.ts checks this against package.json and README.
 */
export interface Entry {
  /** The import specifier a consumer writes. */
  readonly specifier: string;
  /** The source file, relative to the repository root. */
  readonly source: string;
}

export const ENTRIES: readonly Entry[] = [
  { specifier: 'tunstack', source: 'src/index.ts' },
  { specifier: 'tunstack/headers', source: 'src/headers/index.ts' },
  { specifier: 'tunstack/pcap', source: 'src/pcap/index.ts' },
  { specifier: 'tunstack/sim', source: 'src/sim/index.ts' },
  { specifier: 'tunstack/replay', source: 'src/replay/index.ts' },
  { specifier: 'tunstack/sandbox', source: 'src/sandbox/index.ts' },
  { specifier: 'tunstack/host', source: 'src/host/index.ts' },
];
