import { TunstackError } from '../core/errors.js';
import type { Random } from '../core/random.js';

/** Linux's default ip_local_port_range. */
export const EPHEMERAL_LOW = 32768;
export const EPHEMERAL_HIGH = 60999;

/**
 * What a wildcard (null address) reservation covers: every address of both families ('any',
 * the default and a dual-stack IPv6 socket), only IPv4 ('v4': an IPv4 socket) or only IPv6
 * ('v6': an IPV6_V6ONLY socket). A reservation with an address covers that address only (pass
 * IPv4-mapped IPv6 addresses as their 4-byte IPv4 form).
 */
export type PortScope = 'any' | 'v4' | 'v6';

/**
 * Port reservations per transport protocol (gVisor's PortManager, simplified). A reservation is
 * (protocol, local address or any, port). Binding the same port twice conflicts when either side
 * is a wildcard or the addresses are equal, unless both set reuseAddress.
 */
export class PortManager {
  private readonly table = new Map<string, Reservation[]>();

  constructor(private readonly random: Random) {}

  /**
   * Reserve `port` (0 = pick an ephemeral port from the seeded source). Returns the port.
   * Throws EADDRINUSE on conflict, EAGAIN when no ephemeral port is free.
   */
  reserve(protocol: number, address: Uint8Array | null, port: number, owner: object, reuseAddress = false, scope: PortScope = 'any'): number {
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new TunstackError('EINVAL', `port ${port} out of range`);
    }
    if (port !== 0) {
      if (!this.isFree(protocol, address, port, reuseAddress, scope)) {
        throw new TunstackError('EADDRINUSE', `port ${port} is in use`, 'bind');
      }
      this.add(protocol, address, port, owner, reuseAddress, scope);
      return port;
    }
    const span = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1;
    const startAt = this.random.below(span);
    for (let i = 0; i < span; i++) {
      const p = EPHEMERAL_LOW + ((startAt + i) % span);
      if (this.isFree(protocol, address, p, false, scope)) {
        this.add(protocol, address, p, owner, reuseAddress, scope);
        return p;
      }
    }
    throw new TunstackError('EAGAIN', 'no free ephemeral port', 'bind');
  }

  release(protocol: number, port: number, owner: object): void {
    const key = `${protocol}/${port}`;
    const list = this.table.get(key);
    if (!list) return;
    const rest = list.filter((r) => r.owner !== owner);
    if (rest.length === 0) this.table.delete(key);
    else this.table.set(key, rest);
  }

  isFree(protocol: number, address: Uint8Array | null, port: number, reuseAddress: boolean, scope: PortScope = 'any'): boolean {
    const list = this.table.get(`${protocol}/${port}`);
    if (!list) return true;
    for (const r of list) {
      if (reuseAddress && r.reuseAddress) continue;
      if (r.address === null && address === null) {
        if (r.scope === 'any' || scope === 'any' || r.scope === scope) return false;
        continue;
      }
      if (r.address === null || address === null) {
        const wild = r.address === null ? r.scope : scope;
        const len = (r.address ?? address)!.length;
        if (wild === 'any' || (wild === 'v4') === (len === 4)) return false;
        continue;
      }
      if (r.address.length === address.length && r.address.every((b, i) => b === address[i])) return false;
    }
    return true;
  }

  private add(protocol: number, address: Uint8Array | null, port: number, owner: object, reuseAddress: boolean, scope: PortScope): void {
    const key = `${protocol}/${port}`;
    const list = this.table.get(key) ?? [];
    list.push({ address: address ? address.slice() : null, owner, reuseAddress, scope });
    this.table.set(key, list);
  }
}

interface Reservation {
  address: Uint8Array | null;
  owner: object;
  reuseAddress: boolean;
  scope: PortScope;
}
