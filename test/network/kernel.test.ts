/**
 * The Linux kernel as the judge of NDP and MLD, over a real TAP (test/interop helpers: the
 * kernel's end in a fresh network namespace). Needs root and /dev/net/tun; skips otherwise.
 *
 * - tunstack in router mode: the kernel (a host with accept_ra=1) autoconfigures an address from
 *   the advertised prefix, installs the default route via tunstack's link-local address, and
 *   pings tunstack's global address.
 * - MLD: a Linux bridge with multicast snooping and an MLDv2 querier learns the groups tunstack
 *   reports (its solicited-node group and one it joins) into its multicast database.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { formatIP, type IPv6Protocol } from '../../src/index.js';
import { haveCommand, skipInterop, waitFor } from '../interop/helpers/netns.js';
import { Pair } from '../interop/helpers/pair.js';

const skip = skipInterop('test/network/kernel.test.ts');
const noBridge = !skip && !haveCommand('bridge');
if (noBridge) console.warn('test/network/kernel.test.ts: MLD snooping test skipped: `bridge` (iproute2) missing');

let pair: Pair | null = null;
afterEach(() => {
  pair?.cleanup();
  pair = null;
});

describe.skipIf(skip)('the Linux kernel and tunstack\'s NDP / MLD', () => {
  it('Linux autoconfigures from tunstack\'s Router Advertisements and pings through them', async () => {
    const p = (pair = new Pair({ kind: 'tap', vnet: false }));
    const ip6 = p.stack.requireNetwork<IPv6Protocol>(0x86dd);
    p.nic.addAddress('2001:db8:5::1/64', { nodad: true });
    ip6.ndp.startRouter(p.nic, { prefixes: ['2001:db8:5::/64'], dnsServers: ['2001:db8:5::53'], maxIntervalMs: 4000, minIntervalMs: 3000 });
    const ll = () => p.nic.addresses.find((a) => a.address[0] === 0xfe && a.state === undefined);
    await waitFor(() => ll() !== undefined, 10_000, 'tunstack link-local address');
    const routerLL = formatIP(ll()!.address);
    await waitFor(() => p.ns.ip('-6', 'route', 'show', 'default').includes('proto ra'), 15_000, 'a default route from the RA');
    const route = p.ns.ip('-6', 'route', 'show', 'default');
    expect(route).toContain(`via ${routerLL} dev ${p.dev}`);
    await waitFor(
      () => /inet6 2001:db8:5:0:[0-9a-f:]+\/64 scope global dynamic/.test(p.ns.ip('-6', 'addr', 'show', 'dev', p.dev)) && !p.ns.ip('-6', 'addr', 'show', 'dev', p.dev).includes('tentative'),
      15_000,
      'a SLAAC address on the kernel side',
    );
    const out = await p.ns.run('ping', ['-6', '-c', '2', '-i', '0.2', '-W', '2', '2001:db8:5::1']);
    expect(out.stdout, out.stderr).toMatch(/2 (?:packets )?received/);
    // The kernel saw tunstack as a router (R flag in its NAs and RAs).
    expect(p.ns.ip('-6', 'neigh', 'show', 'dev', p.dev)).toMatch(new RegExp(`${routerLL} lladdr [0-9a-f:]+ router`));
    expect(ip6.stats.ndp.raSent).toBeGreaterThan(0);
  });

  it.skipIf(noBridge)('a Linux bridge with MLD snooping learns the groups tunstack reports', async () => {
    const p = (pair = new Pair({ kind: 'tap', vnet: false }));
    const ip6 = p.stack.requireNetwork<IPv6Protocol>(0x86dd);
    // Query every 2 s (the bridge needs a usable link-local address to query from: no DAD on it).
    p.ns.ip('link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '1', 'mcast_querier', '1', 'mcast_mld_version', '2', 'mcast_query_interval', '200', 'mcast_startup_query_interval', '100', 'mcast_query_response_interval', '100');
    p.ns.runSync('sysctl', ['-q', '-w', 'net.ipv6.conf.br0.accept_dad=0']);
    p.ns.ip('link', 'set', p.dev, 'master', 'br0');
    p.ns.ip('link', 'set', 'br0', 'up');
    ip6.joinGroup(p.nic, new Uint8Array([0xff, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 3]));
    const mdb = () => p.ns.runSync('bridge', ['mdb', 'show', 'dev', 'br0']);
    await waitFor(() => mdb().includes('ff05::1:3') && mdb().includes('ff02::1:ff00:2'), 15_000, 'MDB entries for tunstack\'s groups');
    expect(mdb()).toContain(`port ${p.dev} grp ff05::1:3`);
    // The querier asked, and tunstack answered.
    await waitFor(() => ip6.stats.mld.queriesReceived > 0, 10_000, 'an MLD query from the bridge');
    // The answer goes out within the query's maximum response delay (1 s here).
    const before = ip6.stats.mld.reportsSent;
    await waitFor(() => ip6.stats.mld.reportsSent > before, 5_000, 'the report answering the query');
    expect(ip6.stats.mld.invalid).toBe(0);
  });
});
