/**
 * The layering of src/ (docs/architecture.md), checked by `npm run lint` with dependency-cruiser:
 * each folder may import only the folders listed for it (type-only imports included), so
 * dependencies point one way and folders cannot form a cycle; the platform-neutral folders import
 * no Node module (`node:*` or a bare builtin); the browser entry reaches no Node-only folder.
 *
 * Lowest first; a folder's list is what it may import besides itself.
 */
const LAYERS = {
  core: [],
  headers: ['core'],
  pcap: ['core', 'headers'],
  link: ['core', 'headers', 'pcap'],
  stack: ['core', 'headers', 'link'],
  network: ['core', 'headers', 'link', 'stack'],
  transport: ['core', 'headers', 'link', 'stack', 'network'],
  tundev: ['core', 'headers', 'link', 'stack', 'network', 'transport'],
  portable: ['core', 'headers', 'pcap', 'link', 'stack', 'network', 'transport', 'tundev'],
  host: ['core', 'headers', 'pcap', 'link', 'stack', 'network', 'transport', 'tundev'],
  adapters: ['core', 'headers', 'pcap', 'link', 'stack', 'network', 'transport', 'tundev', 'portable'],
  // sim/index.ts (the Node entry tunstack/sim) gives its hosts the package's Stack from adapters/.
  sim: ['core', 'headers', 'pcap', 'link', 'stack', 'network', 'transport', 'tundev', 'portable', 'adapters'],
  web: ['core', 'headers', 'pcap', 'link', 'stack', 'network', 'transport', 'tundev', 'portable', 'sim'],
  replay: ['core', 'headers', 'pcap', 'link', 'stack', 'network', 'transport', 'tundev', 'portable', 'adapters', 'sim'],
  vm: ['core', 'headers', 'pcap', 'link', 'stack', 'network', 'transport', 'tundev', 'portable', 'host'],
  sandbox: ['core', 'headers', 'pcap', 'link', 'stack', 'network', 'transport', 'tundev', 'portable', 'host', 'adapters', 'vm'],
  demo: ['core', 'headers', 'pcap', 'link', 'stack', 'network', 'transport', 'tundev', 'portable', 'adapters', 'sim'],
  cli: ['core', 'headers', 'pcap', 'link', 'stack', 'network', 'transport', 'tundev', 'portable', 'host', 'adapters', 'sim', 'replay', 'vm', 'sandbox', 'demo'],
};

/** Folders that name no Node module: they run in a browser page as they are. */
const PORTABLE = ['core', 'headers', 'link', 'stack', 'network', 'transport', 'tundev', 'portable', 'web'];

/**
 * Node entry and file parts inside otherwise platform-neutral folders (by design, not exceptions):
 * sim/index.ts is `tunstack/sim` (hosts run the Node Stack, captures go to files); pcap/file.ts
 * is the pcap file part (node:fs) beside the codec. The browser entry reaches neither.
 */
const NODE_PARTS = ['^src/sim/index[.]ts$', '^src/pcap/file[.]ts$'];

/** Files of a neutral folder that still import a Node module, each with the date and the reason. None. */
const NODE_EXCEPTIONS = [];

const folders = Object.keys(LAYERS);

const layerRules = folders.map((folder) => ({
  name: `layer-${folder}`,
  comment: `src/${folder} may import only ${LAYERS[folder].length === 0 ? 'itself' : LAYERS[folder].join(', ')} (see .dependency-cruiser.cjs, docs/architecture.md)`,
  severity: 'error',
  from: { path: `^src/${folder}/` },
  to: { path: '^src/', pathNot: `^src/(${[folder, ...LAYERS[folder]].join('|')})/` },
}));

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'no-unknown-folder',
      comment: 'every folder of src/ has a place in the layering (add it to LAYERS)',
      severity: 'error',
      from: { path: '^src/[^/]+/', pathNot: `^src/(${folders.join('|')})/` },
      to: {},
    },
    {
      name: 'entry-not-imported',
      comment: 'src/index.ts is the package entry: nothing in src imports it',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^src/index[.]ts$' },
    },
    {
      name: 'portable-no-node',
      comment: `${PORTABLE.join(', ')}, sim and pcap (but their Node parts, NODE_PARTS) import no Node module`,
      severity: 'error',
      from: {
        path: `^src/(${PORTABLE.join('|')}|sim|pcap)/`,
        pathNot: [...NODE_PARTS, ...NODE_EXCEPTIONS],
      },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'browser-entry-stays-portable',
      comment: 'the browser entry reaches no Node-only folder (adapters, host, replay, sandbox, vm, demo, cli) nor a Node part (NODE_PARTS)',
      severity: 'error',
      from: { path: '^src/web/' },
      to: { path: ['^src/(adapters|host|replay|sandbox|vm|demo|cli)/', ...NODE_PARTS], reachable: true },
    },
    {
      name: 'no-folder-cycle',
      comment: 'no import cycle that leaves its folder (type-only imports included); cycles inside one folder (a class split over files) are allowed',
      severity: 'error',
      from: { path: '^src/([^/]+)/' },
      to: { circular: true, via: { pathNot: '^src/$1/' } },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
