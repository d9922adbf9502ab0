/**
 * Counters, like the kernel's. Plain objects of numbers so tests can assert on them and users can
 * print them; `snapshot` copies a tree of counters.
 */
export type Counters = Record<string, number>;

export function snapshot<T extends object>(c: T): T {
  return structuredClone(c);
}

export interface NicStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** Inbound dropped: NIC disabled. */
  rxDroppedDisabled: number;
  /** Inbound dropped: no handler for the network protocol. */
  rxDroppedUnknownProtocol: number;
  /** Inbound dropped: an Ethernet frame for another host's unicast MAC on a NIC that is not
   * promiscuous (Linux's PACKET_OTHERHOST drop, `rx_otherhost_dropped`). */
  rxDroppedOtherHost: number;
  /** Outbound dropped by the link endpoint (queue full). */
  txDropped: number;
  /** Outbound dropped: NIC disabled. */
  txDroppedDisabled: number;
}

export function newNicStats(): NicStats {
  return {
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    rxDroppedDisabled: 0,
    rxDroppedUnknownProtocol: 0,
    rxDroppedOtherHost: 0,
    txDropped: 0,
    txDroppedDisabled: 0,
  };
}
