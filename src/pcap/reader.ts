/**
 * A streaming reader for classic pcap and pcapng captures.
 *
 * Classic pcap: both byte orders, microsecond (0xa1b2c3d4) and nanosecond (0xa1b23c4d) magic,
 * version 2.x. pcapng: sections (each with its own byte order), Interface Description Blocks
 * (link type, snap length, if_name, if_tsresol as a power of 10 or of 2, if_tsoffset), Enhanced,
 * Simple and obsolete Packet Blocks; every other block is skipped by its length.
 *
 * Nothing reads a whole file into memory: the parser works on one unit at a time (the file
 * header, one record, one block) inside a bounded window that the drivers refill:
 *  - `PcapReader.open(path)` / `fromFd` / `fromSource`: synchronous, `for (const pkt of reader)`;
 *  - `readPcap(stream)`: asynchronous over a Node Readable (or any async iterable of bytes),
 *    `for await (const pkt of readPcap(stream))`;
 *  - `PcapReader.fromBytes(bytes)`: over bytes already in memory.
 *
 * Every length field is checked against a cap (`maxBlockLength`, 16 MiB by default) before any
 * buffer grows, so a corrupt length never causes a huge allocation. Corrupt or truncated input
 * throws `ParseError` naming the byte offset in the file; nothing else is thrown for bad bytes.
 *
 * Over 800 lines because both formats' parsers share one refillable window and its state
 * machine (a unit may end in the next chunk), which the three drivers drive the same way; split
 * apart, the window's invariants would be spread over files that each need all of them.
 */
import { ParseError, TunstackError } from '../core/errors.js';
import {
  expectBytes,
  expectMethods,
  optionalBoolean,
  optionalInteger,
  optionalOneOf,
  optionsObject,
  expectFunction,
} from '../core/validate.js';

/** pcapng block types. */
export const PcapngBlockType = {
  SECTION_HEADER: 0x0a0d0d0a,
  INTERFACE_DESCRIPTION: 0x00000001,
  OBSOLETE_PACKET: 0x00000002,
  SIMPLE_PACKET: 0x00000003,
  NAME_RESOLUTION: 0x00000004,
  INTERFACE_STATISTICS: 0x00000005,
  ENHANCED_PACKET: 0x00000006,
  DECRYPTION_SECRETS: 0x0000000a,
  CUSTOM: 0x00000bad,
  CUSTOM_NO_COPY: 0x40000bad,
} as const;

/** The byte-order magic of a pcapng Section Header Block. */
export const PCAPNG_BYTE_ORDER_MAGIC = 0x1a2b3c4d;
/** Default cap on a pcapng block's total length and a pcap record's captured length. */
export const DEFAULT_MAX_BLOCK_LENGTH = 16 * 1024 * 1024;
/** Default cap on the number of interfaces in one pcapng section. */
export const DEFAULT_MAX_INTERFACES = 65536;

const PCAP_FILE_HEADER_LENGTH = 24;
const PCAP_RECORD_HEADER_LENGTH = 16;
/** libpcap's largest snap length: a classic record may exceed its file's snaplen up to this. */
const PCAP_MAX_SNAPLEN = 262144;
const INITIAL_BUFFER = 64 * 1024;

/** One captured packet. */
export interface PcapRecord {
  /** The captured bytes (possibly fewer than `originalLength`). */
  data: Uint8Array;
  /** Length of the packet on the wire. */
  originalLength: number;
  /** Capture time in nanoseconds since the epoch (0n when the record has none). */
  timestampNs: bigint;
  /** Capture time in milliseconds since the epoch, with fraction (0 when the record has none). */
  timestampMs: number;
  /** False for pcapng Simple Packet Blocks, which carry no time. */
  hasTimestamp: boolean;
  /** Interface index within its pcapng section (always 0 for classic pcap). */
  interfaceId: number;
  /** LINKTYPE_* of the packet's interface. */
  linkType: number;
}

/** An interface described by a pcapng IDB (or the single implicit one of a classic pcap). */
export interface PcapInterface {
  /** Section number (0 for the first SHB). */
  section: number;
  /** Index within the section, as packets refer to it. */
  id: number;
  linkType: number;
  /** 0 = unlimited. */
  snapLength: number;
  /** if_name, when given. */
  name: string | undefined;
  /** Timestamp units per second (from if_tsresol; 1e6 by default). */
  ticksPerSecond: bigint;
  /** if_tsoffset: seconds added to every timestamp (0n by default). */
  tsOffsetSeconds: bigint;
}

export interface PcapReaderOptions {
  /**
   * Largest pcapng block (total length) and largest classic record (captured length) accepted;
   * anything claiming more is a ParseError before memory is allocated. Default 16 MiB.
   */
  maxBlockLength?: number;
  /** Largest number of interfaces in one pcapng section. Default 65536. */
  maxInterfaces?: number;
  /**
   * A record or block cut short by the end of the file: 'error' (default) throws a ParseError
   * naming its offset; 'stop' ends the iteration quietly and sets `truncatedAt`.
   */
  truncated?: 'error' | 'stop';
  /**
   * Reuse one record object whose `data` is a view into the read buffer, valid only until the
   * next read. Default false: every record and its data are fresh.
   */
  reuse?: boolean;
  /** Called for every interface as its IDB is read (pcapng) or with the file header (pcap). */
  onInterface?: (iface: PcapInterface) => void;
  /** Initial size of the read window in bytes (it grows up to the block cap). Default 64 KiB. */
  bufferSize?: number;
}

/** Where a synchronous reader's bytes come from (a file descriptor, or anything like one). */
export interface SyncByteSource {
  /** Read up to `length` bytes into `into` at `offset`; 0 at end of input. */
  read(into: Uint8Array, offset: number, length: number): number;
  close?(): void;
}

// ---------------------------------------------------------------------------------------------
// Parser: one unit at a time over a window of bytes.

const STEP_NEED = 0;
const STEP_END = -1;

const State = { Start: 0, Pcap: 1, Pcapng: 2, Done: 3 } as const;
type State = (typeof State)[keyof typeof State];

function u16(b: Uint8Array, p: number, le: boolean): number {
  return le ? b[p]! | (b[p + 1]! << 8) : (b[p]! << 8) | b[p + 1]!;
}

function u32(b: Uint8Array, p: number, le: boolean): number {
  return le
    ? (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0
    : ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
}

function i64(b: Uint8Array, p: number, le: boolean): bigint {
  const hi = le ? u32(b, p + 4, le) : u32(b, p, le);
  const lo = le ? u32(b, p, le) : u32(b, p + 4, le);
  return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
}

function hex(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0');
}

const NS_PER_SEC = 1_000_000_000n;
const NS_PER_MS = 1_000_000n;
const utf8 = new TextDecoder('utf-8', { fatal: false });

/**
 * The format state machine. `step` looks at the bytes `buf[start, end)` (the file from offset
 * `fileOff` on) and either consumes one unit (returns its length, with `produced` telling
 * whether a packet came out), asks for more bytes (returns STEP_NEED with `need` set), or ends
 * (STEP_END).
 */
class PcapParser {
  state: State = State.Start;
  format: 'pcap' | 'pcapng' | undefined = undefined;
  littleEndian = true;
  nanosecond = false;
  versionMajor = 0;
  versionMinor = 0;
  /** Classic pcap: the file's snap length; pcapng: the first interface's (or 0). */
  snapLength = 0;
  /** Classic pcap: the file's link type; pcapng: the first interface's (or -1 before one). */
  linkType = -1;
  section = -1;
  interfaces: PcapInterface[] = [];
  truncatedAt = -1;
  need = 0;
  produced = false;

  // The packet of the last step that produced one.
  recOff = 0;
  recCap = 0;
  recOrig = 0;
  recTsNs = 0n;
  recTsMs = 0;
  recHasTs = false;
  recIface = 0;
  recLinkType = 0;

  private recordCap = 0;
  private readonly maxBlock: number;
  private readonly maxInterfaces: number;
  private readonly stopOnTruncation: boolean;
  private readonly onInterface: ((iface: PcapInterface) => void) | undefined;

  constructor(options: PcapReaderOptions) {
    checkReaderOptions(options);
    const maxBlock = options.maxBlockLength ?? DEFAULT_MAX_BLOCK_LENGTH;
    if (!Number.isInteger(maxBlock) || maxBlock < 64 || maxBlock > 0x7ffffff0) {
      throw new TunstackError('EINVAL', `maxBlockLength ${maxBlock} out of range`);
    }
    this.maxBlock = maxBlock;
    this.maxInterfaces = options.maxInterfaces ?? DEFAULT_MAX_INTERFACES;
    this.stopOnTruncation = options.truncated === 'stop';
    this.onInterface = options.onInterface;
  }

  /** Largest window a unit can need. */
  get maxUnit(): number {
    return this.maxBlock + PCAP_RECORD_HEADER_LENGTH;
  }

  step(buf: Uint8Array, start: number, end: number, fileOff: number, eof: boolean): number {
    this.produced = false;
    switch (this.state) {
      case State.Start:
        return this.stepStart(buf, start, end, fileOff, eof);
      case State.Pcap:
        return this.stepPcapRecord(buf, start, end, fileOff, eof);
      case State.Pcapng:
        return this.stepBlock(buf, start, end, fileOff, eof);
      default:
        return STEP_END;
    }
  }

  /** Not enough bytes for a unit of `n`: wait for more, or end/throw at end of input. */
  private short(n: number, avail: number, fileOff: number, eof: boolean, what: string): number {
    if (!eof) {
      this.need = n;
      return STEP_NEED;
    }
    if (avail === 0) {
      this.state = State.Done;
      return STEP_END;
    }
    if (this.stopOnTruncation) {
      this.truncatedAt = fileOff;
      this.state = State.Done;
      return STEP_END;
    }
    this.state = State.Done;
    throw new ParseError(`truncated ${what}: ${n} bytes needed, ${avail} left in the file`, fileOff);
  }

  private fail(message: string, offset: number): never {
    this.state = State.Done;
    throw new ParseError(message, offset);
  }

  private stepStart(buf: Uint8Array, start: number, end: number, fileOff: number, eof: boolean): number {
    const avail = end - start;
    if (avail < 4) {
      if (!eof) {
        this.need = 4;
        return STEP_NEED;
      }
      this.fail(avail === 0 ? 'empty file: not a pcap or pcapng capture' : 'file too short for a capture header', fileOff);
    }
    const magic = u32(buf, start, true);
    if (magic === PcapngBlockType.SECTION_HEADER) {
      this.format = 'pcapng';
      this.state = State.Pcapng;
      return this.stepBlock(buf, start, end, fileOff, eof);
    }
    let le: boolean;
    let nano: boolean;
    switch (magic) {
      case 0xa1b2c3d4:
        le = true;
        nano = false;
        break;
      case 0xd4c3b2a1:
        le = false;
        nano = false;
        break;
      case 0xa1b23c4d:
        le = true;
        nano = true;
        break;
      case 0x4d3cb2a1:
        le = false;
        nano = true;
        break;
      default:
        this.fail(`not a pcap or pcapng file (magic ${hex(magic)})`, fileOff);
    }
    if (avail < PCAP_FILE_HEADER_LENGTH) {
      if (!eof) {
        this.need = PCAP_FILE_HEADER_LENGTH;
        return STEP_NEED;
      }
      this.fail(`truncated pcap file header: ${PCAP_FILE_HEADER_LENGTH} bytes needed, ${avail} in the file`, fileOff);
    }
    const major = u16(buf, start + 4, le);
    const minor = u16(buf, start + 6, le);
    if (major !== 2) this.fail(`unsupported pcap version ${major}.${minor}`, fileOff + 4);
    this.format = 'pcap';
    this.littleEndian = le;
    this.nanosecond = nano;
    this.versionMajor = major;
    this.versionMinor = minor;
    this.snapLength = u32(buf, start + 16, le);
    this.linkType = u32(buf, start + 20, le) & 0xffff;
    this.recordCap = Math.min(this.maxBlock, Math.max(this.snapLength, PCAP_MAX_SNAPLEN));
    this.section = 0;
    const iface: PcapInterface = {
      section: 0,
      id: 0,
      linkType: this.linkType,
      snapLength: this.snapLength,
      name: undefined,
      ticksPerSecond: nano ? NS_PER_SEC : 1_000_000n,
      tsOffsetSeconds: 0n,
    };
    this.interfaces = [iface];
    this.state = State.Pcap;
    this.onInterface?.(iface);
    return PCAP_FILE_HEADER_LENGTH;
  }

  private stepPcapRecord(buf: Uint8Array, start: number, end: number, fileOff: number, eof: boolean): number {
    const avail = end - start;
    if (avail < PCAP_RECORD_HEADER_LENGTH) {
      return this.short(PCAP_RECORD_HEADER_LENGTH, avail, fileOff, eof, 'pcap record header');
    }
    const le = this.littleEndian;
    const caplen = u32(buf, start + 8, le);
    if (caplen > this.recordCap) {
      this.fail(`pcap record captured length ${caplen} exceeds the limit ${this.recordCap}`, fileOff + 8);
    }
    const total = PCAP_RECORD_HEADER_LENGTH + caplen;
    if (avail < total) return this.short(total, avail, fileOff, eof, 'pcap record');
    const sec = u32(buf, start, le);
    const frac = u32(buf, start + 4, le);
    this.recOff = start + PCAP_RECORD_HEADER_LENGTH;
    this.recCap = caplen;
    this.recOrig = u32(buf, start + 12, le);
    if (this.nanosecond) {
      this.recTsNs = BigInt(sec) * NS_PER_SEC + BigInt(frac);
      this.recTsMs = sec * 1000 + frac / 1e6;
    } else {
      this.recTsNs = BigInt(sec) * NS_PER_SEC + BigInt(frac * 1000);
      this.recTsMs = sec * 1000 + frac / 1e3;
    }
    this.recHasTs = true;
    this.recIface = 0;
    this.recLinkType = this.linkType;
    this.produced = true;
    return total;
  }

  private stepBlock(buf: Uint8Array, start: number, end: number, fileOff: number, eof: boolean): number {
    const avail = end - start;
    if (avail < 8) return this.short(8, avail, fileOff, eof, 'pcapng block header');
    let le = this.littleEndian;
    // The SHB type reads the same in both byte orders.
    const type = u32(buf, start, le);
    if (this.section < 0 && type !== PcapngBlockType.SECTION_HEADER) {
      this.fail(`pcapng file does not start with a Section Header Block (type ${hex(type)})`, fileOff);
    }
    if (type === PcapngBlockType.SECTION_HEADER) {
      if (avail < 12) return this.short(12, avail, fileOff, eof, 'pcapng section header');
      const bom = u32(buf, start + 8, true);
      if (bom === PCAPNG_BYTE_ORDER_MAGIC) le = true;
      else if (bom === 0x4d3c2b1a) le = false;
      else this.fail(`bad pcapng byte-order magic ${hex(bom)}`, fileOff + 8);
    }
    const len = u32(buf, start + 4, le);
    let min = 12;
    switch (type) {
      case PcapngBlockType.SECTION_HEADER:
        min = 28;
        break;
      case PcapngBlockType.INTERFACE_DESCRIPTION:
        min = 20;
        break;
      case PcapngBlockType.SIMPLE_PACKET:
        min = 16;
        break;
      case PcapngBlockType.ENHANCED_PACKET:
      case PcapngBlockType.OBSOLETE_PACKET:
        min = 32;
        break;
    }
    if (len < min) this.fail(`pcapng block (type ${hex(type)}) length ${len} is below its minimum ${min}`, fileOff + 4);
    if ((len & 3) !== 0) this.fail(`pcapng block length ${len} is not a multiple of 4`, fileOff + 4);
    if (len > this.maxBlock) {
      this.fail(`pcapng block length ${len} exceeds the limit ${this.maxBlock}`, fileOff + 4);
    }
    if (avail < len) return this.short(len, avail, fileOff, eof, 'pcapng block');
    const trailer = u32(buf, start + len - 4, le);
    if (trailer !== len) {
      this.fail(`pcapng block trailing length ${trailer} differs from its length ${len}`, fileOff + len - 4);
    }
    switch (type) {
      case PcapngBlockType.SECTION_HEADER:
        this.sectionHeader(buf, start, len, fileOff, le);
        break;
      case PcapngBlockType.INTERFACE_DESCRIPTION:
        this.interfaceDescription(buf, start, len, fileOff);
        break;
      case PcapngBlockType.ENHANCED_PACKET:
        this.enhancedPacket(buf, start, len, fileOff, false);
        break;
      case PcapngBlockType.OBSOLETE_PACKET:
        this.enhancedPacket(buf, start, len, fileOff, true);
        break;
      case PcapngBlockType.SIMPLE_PACKET:
        this.simplePacket(buf, start, len, fileOff);
        break;
      default:
        // Unknown, statistics, name resolution, custom, ...: skipped by length.
        break;
    }
    return len;
  }

  private sectionHeader(buf: Uint8Array, start: number, len: number, fileOff: number, le: boolean): void {
    const major = u16(buf, start + 12, le);
    const minor = u16(buf, start + 14, le);
    if (major !== 1 || (minor !== 0 && minor !== 2)) {
      this.fail(`unsupported pcapng section version ${major}.${minor}`, fileOff + 12);
    }
    this.walkOptions(buf, start + 24, start + len - 4, fileOff, start, le, null);
    this.littleEndian = le;
    this.versionMajor = major;
    this.versionMinor = minor;
    this.section++;
    this.interfaces = [];
  }

  private interfaceDescription(buf: Uint8Array, start: number, len: number, fileOff: number): void {
    const le = this.littleEndian;
    if (this.interfaces.length >= this.maxInterfaces) {
      this.fail(`more than ${this.maxInterfaces} interfaces in one pcapng section`, fileOff);
    }
    const iface: PcapInterface = {
      section: this.section,
      id: this.interfaces.length,
      linkType: u16(buf, start + 8, le),
      snapLength: u32(buf, start + 12, le),
      name: undefined,
      ticksPerSecond: 1_000_000n,
      tsOffsetSeconds: 0n,
    };
    this.walkOptions(buf, start + 16, start + len - 4, fileOff, start, le, iface);
    this.interfaces.push(iface);
    if (this.linkType < 0) {
      this.linkType = iface.linkType;
      this.snapLength = iface.snapLength;
    }
    this.onInterface?.(iface);
  }

  /**
   * Walk an options list in `[p, end)`. Every option must fit in the block; the list ends at
   * opt_endofopt or at the end of the block. IDB options of interest are stored in `iface`.
   */
  private walkOptions(
    buf: Uint8Array,
    p: number,
    end: number,
    fileOff: number,
    blockStart: number,
    le: boolean,
    iface: PcapInterface | null,
  ): void {
    while (p + 4 <= end) {
      const code = u16(buf, p, le);
      const olen = u16(buf, p + 2, le);
      if (code === 0) return;
      const v = p + 4;
      if (v + olen > end) {
        this.fail(`pcapng option ${code} of length ${olen} runs past the end of its block`, fileOff + (p - blockStart));
      }
      if (iface !== null) {
        if (code === 2) {
          iface.name = utf8.decode(buf.subarray(v, v + olen));
        } else if (code === 9 && olen >= 1) {
          const r = buf[v]!;
          iface.ticksPerSecond = (r & 0x80) !== 0 ? 1n << BigInt(r & 0x7f) : 10n ** BigInt(r);
        } else if (code === 14 && olen >= 8) {
          iface.tsOffsetSeconds = i64(buf, v, le);
        }
      }
      p = v + ((olen + 3) & ~3);
    }
  }

  private setTime(iface: PcapInterface, hi: number, lo: number): void {
    const ticks = (BigInt(hi) << 32n) | BigInt(lo);
    const tps = iface.ticksPerSecond;
    let ns: bigint;
    if (tps === 1_000_000n) ns = ticks * 1000n;
    else if (tps === NS_PER_SEC) ns = ticks;
    else ns = (ticks / tps) * NS_PER_SEC + ((ticks % tps) * NS_PER_SEC) / tps;
    if (iface.tsOffsetSeconds !== 0n) ns += iface.tsOffsetSeconds * NS_PER_SEC;
    this.recTsNs = ns;
    this.recTsMs = Number(ns / NS_PER_MS) + Number(ns % NS_PER_MS) / 1e6;
    this.recHasTs = true;
  }

  private enhancedPacket(buf: Uint8Array, start: number, len: number, fileOff: number, obsolete: boolean): void {
    const le = this.littleEndian;
    const ifid = obsolete ? u16(buf, start + 8, le) : u32(buf, start + 8, le);
    const iface = this.interfaces[ifid];
    if (iface === undefined) {
      this.fail(`packet for interface ${ifid}, but the section defines ${this.interfaces.length}`, fileOff + 8);
    }
    const caplen = u32(buf, start + 20, le);
    if (caplen > len - 32) {
      this.fail(`packet captured length ${caplen} exceeds its block (${len - 32} bytes of data)`, fileOff + 20);
    }
    this.setTime(iface, u32(buf, start + 12, le), u32(buf, start + 16, le));
    this.recOff = start + 28;
    this.recCap = caplen;
    this.recOrig = u32(buf, start + 24, le);
    this.recIface = ifid;
    this.recLinkType = iface.linkType;
    this.produced = true;
  }

  private simplePacket(buf: Uint8Array, start: number, len: number, fileOff: number): void {
    const iface = this.interfaces[0];
    if (iface === undefined) this.fail('simple packet block in a section without interfaces', fileOff);
    const orig = u32(buf, start + 8, this.littleEndian);
    let caplen = Math.min(orig, len - 16);
    if (iface.snapLength !== 0 && caplen > iface.snapLength) caplen = iface.snapLength;
    this.recOff = start + 12;
    this.recCap = caplen;
    this.recOrig = orig;
    this.recTsNs = 0n;
    this.recTsMs = 0;
    this.recHasTs = false;
    this.recIface = 0;
    this.recLinkType = iface.linkType;
    this.produced = true;
  }
}

// ---------------------------------------------------------------------------------------------
// The window of bytes the drivers keep, and the shared reader surface.

abstract class PcapReaderBase {
  protected readonly parser: PcapParser;
  protected buf: Uint8Array;
  protected start = 0;
  protected end = 0;
  /** File offset of buf[start]. */
  protected pos = 0;
  protected eof = false;
  private readonly reuse: boolean;
  private readonly shared: PcapRecord | null;
  private maxCapacity = 0;

  protected constructor(options: PcapReaderOptions, initial: Uint8Array | null) {
    this.parser = new PcapParser(options);
    this.reuse = options.reuse ?? false;
    this.shared = this.reuse
      ? { data: new Uint8Array(0), originalLength: 0, timestampNs: 0n, timestampMs: 0, hasTimestamp: false, interfaceId: 0, linkType: 0 }
      : null;
    if (initial !== null) {
      this.buf = initial;
      this.end = initial.length;
      this.eof = true;
    } else {
      const size = options.bufferSize ?? INITIAL_BUFFER;
      if (!Number.isInteger(size) || size < 64) throw new TunstackError('EINVAL', `bufferSize ${size} out of range`);
      this.buf = new Uint8Array(Math.min(size, this.parser.maxUnit));
    }
    this.maxCapacity = this.buf.length;
  }

  /** 'pcap' or 'pcapng' once the file header has been read. */
  get format(): 'pcap' | 'pcapng' | undefined {
    return this.parser.format;
  }
  /** Byte order of the file (pcapng: of the current section). */
  get littleEndian(): boolean {
    return this.parser.littleEndian;
  }
  /** Classic pcap with nanosecond timestamps. */
  get nanosecond(): boolean {
    return this.parser.nanosecond;
  }
  get versionMajor(): number {
    return this.parser.versionMajor;
  }
  get versionMinor(): number {
    return this.parser.versionMinor;
  }
  /** Classic pcap: the header's snap length; pcapng: the first interface's. */
  get snapLength(): number {
    return this.parser.snapLength;
  }
  /** Classic pcap: the header's link type; pcapng: the first interface's (-1 before one). */
  get linkType(): number {
    return this.parser.linkType;
  }
  /** Interfaces of the current section (classic pcap: one). */
  get interfaces(): readonly PcapInterface[] {
    return this.parser.interfaces;
  }
  /** Number of pcapng sections seen (classic pcap: 1). */
  get sections(): number {
    return this.parser.section + 1;
  }
  /** File offset where a truncated record was found with `truncated: 'stop'`, else -1. */
  get truncatedAt(): number {
    return this.parser.truncatedAt;
  }
  /** File offset of the next unread byte. */
  get offset(): number {
    return this.pos;
  }
  /** Largest read window this reader has held (bytes); bounded by the block cap. */
  get bufferCapacity(): number {
    return this.maxCapacity;
  }

  /** Make room for `n` bytes from `start`: compact, or grow (n is already capped by the parser). */
  protected reserve(n: number): void {
    if (this.buf.length - this.start >= n) return;
    const have = this.end - this.start;
    if (this.buf.length >= n) {
      this.buf.copyWithin(0, this.start, this.end);
    } else {
      const size = Math.min(Math.max(n, this.buf.length * 2), Math.max(n, this.parser.maxUnit));
      const next = new Uint8Array(size);
      next.set(this.buf.subarray(this.start, this.end));
      this.buf = next;
      if (size > this.maxCapacity) this.maxCapacity = size;
    }
    this.start = 0;
    this.end = have;
  }

  /**
   * Run the parser over the window once. Returns a record, null when a unit was consumed
   * without one, undefined when more bytes are needed (`parser.need`), or false at the end.
   */
  protected advance(): PcapRecord | null | undefined | false {
    const p = this.parser;
    const r = p.step(this.buf, this.start, this.end, this.pos, this.eof);
    if (r === STEP_END) return false;
    if (r === STEP_NEED) return undefined;
    let rec: PcapRecord | null = null;
    if (p.produced) {
      const data = this.reuse ? this.buf.subarray(p.recOff, p.recOff + p.recCap) : this.buf.slice(p.recOff, p.recOff + p.recCap);
      if (this.shared !== null) {
        rec = this.shared;
        rec.data = data;
        rec.originalLength = p.recOrig;
        rec.timestampNs = p.recTsNs;
        rec.timestampMs = p.recTsMs;
        rec.hasTimestamp = p.recHasTs;
        rec.interfaceId = p.recIface;
        rec.linkType = p.recLinkType;
      } else {
        rec = {
          data,
          originalLength: p.recOrig,
          timestampNs: p.recTsNs,
          timestampMs: p.recTsMs,
          hasTimestamp: p.recHasTs,
          interfaceId: p.recIface,
          linkType: p.recLinkType,
        };
      }
    }
    this.start += r;
    this.pos += r;
    return rec;
  }
}

// ---------------------------------------------------------------------------------------------
// Synchronous reader.

/**
 * A synchronous pcap/pcapng reader over any `SyncByteSource` (or bytes in memory), reading
 * through a bounded window. Iterating it closes the source when the iteration ends. Files and
 * file descriptors (`PcapReader.open`, `fromFd`) are the Node entry's subclass, src/pcap/file.ts.
 */
export class PcapReader extends PcapReaderBase implements Iterable<PcapRecord> {
  private source: SyncByteSource | null;
  private closed = false;

  protected constructor(source: SyncByteSource | null, bytes: Uint8Array | null, options: PcapReaderOptions) {
    super(options, bytes);
    this.source = source;
    // Read the file header now, so that format errors show at open and the header fields are set.
    try {
      while (this.parser.section < 0) {
        const r = this.advance();
        if (r === undefined) this.fill(this.parser.need);
        else if (r === false) break;
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /**
   * @internal For readers of files (src/pcap/file.ts): check the options, then open the source
   * (so that bad options fail before a file is opened), then read its header.
   */
  protected static openChecked(open: () => SyncByteSource, options: PcapReaderOptions): PcapReader {
    checkReaderOptions(options);
    return new this(open(), null, options);
  }

  /** Read from any synchronous byte source. */
  static fromSource(source: SyncByteSource, options: PcapReaderOptions = {}): PcapReader {
    expectMethods(source, 'PcapReader.fromSource', 'source', ['read']);
    return new PcapReader(source, null, options);
  }

  /** Read a capture already in memory (records are copied out unless `reuse`). */
  static fromBytes(bytes: Uint8Array, options: PcapReaderOptions = {}): PcapReader {
    expectBytes(bytes, 'PcapReader.fromBytes', 'bytes');
    return new PcapReader(null, bytes, options);
  }

  private fill(n: number): void {
    const src = this.source;
    if (src === null || this.closed) {
      this.eof = true;
      return;
    }
    this.reserve(n);
    while (this.end - this.start < n) {
      const k = src.read(this.buf, this.end, this.buf.length - this.end);
      if (k <= 0) {
        this.eof = true;
        return;
      }
      this.end += k;
    }
  }

  /** The next packet, or null at the end. Throws ParseError on corrupt input. */
  read(): PcapRecord | null {
    for (;;) {
      let r: PcapRecord | null | undefined | false;
      try {
        r = this.advance();
      } catch (e) {
        this.close();
        throw e;
      }
      if (r === false) {
        this.close();
        return null;
      }
      if (r === undefined) this.fill(this.parser.need);
      else if (r !== null) return r;
    }
  }

  /** Read every remaining packet into an array. */
  readAll(): PcapRecord[] {
    const out: PcapRecord[] = [];
    for (let r = this.read(); r !== null; r = this.read()) out.push(r);
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.source?.close?.();
    this.source = null;
  }

  *[Symbol.iterator](): Iterator<PcapRecord> {
    try {
      for (let r = this.read(); r !== null; r = this.read()) yield r;
    } finally {
      this.close();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Asynchronous reader.

/**
 * An asynchronous pcap/pcapng reader over a Node Readable (or any async iterable of byte
 * chunks). Bytes are copied from the chunks into a bounded window only as the parser needs them,
 * and the stream is pulled one chunk at a time, so memory stays bounded whatever the file size.
 */
export class PcapStreamReader extends PcapReaderBase implements AsyncIterable<PcapRecord> {
  private readonly stream: AsyncIterable<unknown>;
  private chunk: Uint8Array | null = null;
  private chunkOff = 0;

  constructor(stream: AsyncIterable<unknown>, options: PcapReaderOptions = {}) {
    const s = stream as { [Symbol.asyncIterator]?: unknown } | null;
    if (typeof s !== 'object' || s === null || typeof s[Symbol.asyncIterator] !== 'function') {
      throw new TunstackError('EINVAL', `new PcapStreamReader: "stream" must be an async iterable of bytes`);
    }
    super(options, null);
    this.stream = stream;
  }

  private async fill(it: AsyncIterator<unknown>, n: number): Promise<void> {
    this.reserve(n);
    while (this.end - this.start < n) {
      let c = this.chunk;
      if (c === null || this.chunkOff >= c.length) {
        const x = await it.next();
        if (x.done === true) {
          this.eof = true;
          this.chunk = null;
          return;
        }
        if (!(x.value instanceof Uint8Array)) {
          throw new TunstackError('EINVAL', 'readPcap: the stream must yield bytes (Buffer/Uint8Array), not strings');
        }
        c = this.chunk = x.value;
        this.chunkOff = 0;
      }
      const k = Math.min(c.length - this.chunkOff, this.buf.length - this.end);
      this.buf.set(c.subarray(this.chunkOff, this.chunkOff + k), this.end);
      this.chunkOff += k;
      this.end += k;
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<PcapRecord> {
    const it = this.stream[Symbol.asyncIterator]();
    let finished = false;
    try {
      for (;;) {
        const r = this.advance();
        if (r === false) {
          finished = true;
          return;
        }
        if (r === undefined) await this.fill(it, this.parser.need);
        else if (r !== null) yield r;
      }
    } finally {
      this.chunk = null;
      // Stop the stream unless it ran to its end (a Readable is destroyed by this).
      if (!finished) await it.return?.();
    }
  }
}

/** `for await (const pkt of readPcap(stream))`: packets of a pcap/pcapng stream. */
export function readPcap(stream: AsyncIterable<unknown>, options: PcapReaderOptions = {}): PcapStreamReader {
  return new PcapStreamReader(stream, options);
}

/** Format a nanosecond timestamp as seconds with nine decimals (as tshark's frame.time_epoch). */
export function formatEpochNs(ns: bigint): string {
  const neg = ns < 0n;
  const a = neg ? -ns : ns;
  return `${neg ? '-' : ''}${a / NS_PER_SEC}.${(a % NS_PER_SEC).toString().padStart(9, '0')}`;
}

/** The reader options' types and ranges (EINVAL naming the option). */
function checkReaderOptions(options: unknown): void {
  const where = 'PcapReader';
  const o = optionsObject<PcapReaderOptions>(options, where);
  optionalInteger(o.maxBlockLength, where, 'options.maxBlockLength', 64, 0x7ffffff0);
  optionalInteger(o.maxInterfaces, where, 'options.maxInterfaces', 1, 0x7fffffff);
  optionalOneOf(o.truncated, where, 'options.truncated', ['error', 'stop']);
  optionalBoolean(o.reuse, where, 'options.reuse');
  if (o.onInterface !== undefined) expectFunction(o.onInterface, where, 'options.onInterface');
  optionalInteger(o.bufferSize, where, 'options.bufferSize', 64, 0x7fffffff);
}
