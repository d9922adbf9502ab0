import { TunstackError } from '../errors.js';
import type { Random } from './random.js';

/** Linux's default ip_local_port_range. */
export const EPHEMERAL_LOW = 32768;
export const EPHEMERAL_HIGH = 60999;

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
  reserve(protocol: number, address: Uint8Array | null, port: number, owner: object, reuseAddress = false): number {
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new TunstackError('EINVAL', `port ${port} out of range`);
    }
    if (port !== 0) {
      if (!this.isFree(protocol, address, port, reuseAddress)) {
        throw new TunstackError('EADDRINUSE', `port ${port} is in use`, 'bind');
      }
      this.add(protocol, address, port, owner, reuseAddress);
      return port;
    }
    const span = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1;
    const startAt = this.random.below(span);
    for (let i = 0; i < span; i++) {
      const p = EPHEMERAL_LOW + ((startAt + i) % span);
      if (this.isFree(protocol, address, p, false)) {
        this.add(protocol, address, p, owner, reuseAddress);
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

  isFree(protocol: number, address: Uint8Array | null, port: number, reuseAddress: boolean): boolean {
    const list = this.table.get(`${protocol}/${port}`);
    if (!list) return true;
    for (const r of list) {
      if (reuseAddress && r.reuseAddress) continue;
      if (r.address === null || address === null) return false;
      if (r.address.length === address.length && r.address.every((b, i) => b === address[i])) return false;
    }
    return true;
  }

  private add(protocol: number, address: Uint8Array | null, port: number, owner: object, reuseAddress: boolean): void {
    const key = `${protocol}/${port}`;
    const list = this.table.get(key) ?? [];
    list.push({ address: address ? address.slice() : null, owner, reuseAddress });
    this.table.set(key, list);
  }
}

interface Reservation {
  address: Uint8Array | null;
  owner: object;
  reuseAddress: boolean;
}
