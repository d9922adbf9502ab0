import { maskAddress } from '../core/address.js';
import { NDP_INFINITE_LIFETIME } from '../headers/ndp.js';
import type { Timer } from '../core/clock.js';
import type { IPv6Protocol } from './ipv6.js';
import { addrKey, eui64, isLinkLocal, sameArray } from './ipv6-address.js';
import type { Ndp, NdpIface } from './ndp.js';

/**
 * Prefix Information from Router Advertisements, for Ndp: on-link prefixes become routes
 * (metric 256) for their valid lifetime, and autonomous /64 prefixes give stateless
 * autoconfigured addresses (RFC 4862: prefix + EUI-64; preferred and valid lifetimes, the
 * two-hour rule against shortening the valid lifetime).
 */

/** @internal A learned entry with a valid lifetime (router, prefix, DNS server, address). */
export interface Timed {
  address: Uint8Array;
  prefixLength: number;
  timer: Timer;
  /** Clock time the valid lifetime ends (Infinity). */
  until: number;
}

/** @internal */
export interface SlaacAddress extends Timed {
  prefTimer: Timer;
}

const TWO_HOURS = 7_200_000;

/** @internal Prefix handling and SLAAC addresses of one Ndp. */
export class Slaac {
  constructor(
    private readonly ip: IPv6Protocol,
    private readonly ndp: Ndp,
  ) {}

  private get clock() {
    return this.ip.stack.clock;
  }

  /** @internal A Prefix Information option of an accepted RA (RFC 4861 6.3.4, RFC 4862 5.5.3). */
  onPrefix(s: NdpIface, prefix: Uint8Array, len: number, onLink: boolean, auto: boolean, valid: number, preferred: number): void {
    if (len > 128 || isLinkLocal(prefix) || prefix[0] === 0xff || preferred > valid) return;
    const nic = s.nic;
    const masked = maskAddress(prefix, len);
    if (onLink) {
      const key = addrKey(masked, 0) + len;
      const had = s.prefixes.get(key);
      if (valid === 0) {
        if (had !== undefined) {
          had.timer.cancel();
          s.prefixes.delete(key);
          this.ip.stack.routes.remove((e) => e.nicId === nic.id && e.metric === 256 && e.prefixLength === len && e.gateway === null && sameArray(e.destination, masked));
        }
      } else {
        if (had === undefined) {
          try {
            this.ip.stack.routes.add({ destination: masked, prefixLength: len, gateway: null, nicId: nic.id, metric: 256, connected: true });
          } catch {
            // already routed
          }
        }
        const entry: Timed = had ?? {
          address: masked,
          prefixLength: len,
          timer: this.clock.timer(() => {
            s.prefixes.delete(key);
            this.ip.stack.routes.remove((e) => e.nicId === nic.id && e.metric === 256 && e.prefixLength === len && e.gateway === null && sameArray(e.destination, masked));
          }),
          until: Infinity,
        };
        s.prefixes.set(key, entry);
        setLifetime(entry, valid, this.clock.now());
      }
    }
    if (auto && this.ndp.autoconf && len === 64 && nic.linkAddress.length === 6) this.slaac(s, masked, valid, preferred);
  }

  private slaac(s: NdpIface, prefix: Uint8Array, valid: number, preferred: number): void {
    const nic = s.nic;
    const addr = prefix.slice();
    addr.set(eui64(nic.linkAddress), 8);
    const key = addrKey(addr, 0);
    const now = this.clock.now();
    let a = s.slaac.get(key);
    if (a === undefined) {
      if (valid === 0 || nic.addressInfo(addr) !== undefined) return;
      const entry: SlaacAddress = {
        address: addr,
        prefixLength: 64,
        until: Infinity,
        timer: this.clock.timer(() => {
          s.slaac.delete(key);
          entry.prefTimer.cancel();
          if (nic.addressInfo(addr) !== undefined) nic.removeAddress(addr);
        }),
        prefTimer: this.clock.timer(() => {
          const info = nic.addressInfo(addr);
          if (info !== undefined && info.state === undefined) nic.setAddressState(addr, 'deprecated');
        }),
      };
      a = entry;
      s.slaac.set(key, a);
      this.ndp.stats.slaacAddresses++;
      setLifetime(a, valid, now);
      this.setPreferred(a, preferred);
      nic.addAddress({ address: addr, prefixLength: 64 }, { route: false });
      return;
    }
    // RFC 4862 5.5.3 (e): the two-hour rule against shortening a valid lifetime.
    const remaining = a.until - now;
    const v = valid === NDP_INFINITE_LIFETIME ? Infinity : valid * 1000;
    if (v > TWO_HOURS || v > remaining) setLifetime(a, valid, now);
    else if (remaining > TWO_HOURS) setLifetime(a, TWO_HOURS / 1000, now);
    this.setPreferred(a, preferred);
    const info = nic.addressInfo(addr);
    if (info !== undefined && info.state === 'deprecated' && preferred > 0) nic.setAddressState(addr, 'preferred');
  }

  private setPreferred(a: SlaacAddress, preferred: number): void {
    if (preferred === NDP_INFINITE_LIFETIME) a.prefTimer.cancel();
    else a.prefTimer.schedule(preferred * 1000);
  }

}

/** @internal Arm `e`'s timer for `seconds` (NDP_INFINITE_LIFETIME: forever). */
export function setLifetime(e: Timed, seconds: number, now: number): void {
  if (seconds === NDP_INFINITE_LIFETIME) {
    e.until = Infinity;
    e.timer.cancel();
    return;
  }
  e.until = now + seconds * 1000;
  e.timer.schedule(seconds * 1000);
}
