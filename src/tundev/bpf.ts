import { TunstackError } from '../core/errors.js';
import { BPF_MAXINSNS } from './constants.js';

/**
 * Classic BPF (struct sock_filter), as TUNATTACHFILTER takes it: the socket filter Linux runs on
 * every packet a TAP hands its reader. The checker follows bpf_check_classic (program length,
 * opcodes, jump targets, constant divisors and shifts, scratch memory read only after a write on
 * every path, ancillary offsets); the interpreter follows the kernel's semantics: 32-bit unsigned
 * A and X, sixteen scratch words, a load outside the packet or a division by a zero X returns 0
 * (drop). The result is how many bytes of the packet to keep (0: drop it).
 *
 * Programs are arrays of `{ code, jt, jf, k }`, the four fields `tcpdump -dd` prints.
 */
export interface BpfInstruction {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** What an ancillary load (SKF_AD_*) can see of the packet. */
export interface BpfPacketInfo {
  /** EtherType (SKF_AD_PROTOCOL). */
  protocol: number;
  /** PACKET_* type (SKF_AD_PKTTYPE): 4, PACKET_OUTGOING, for what a TAP hands its reader. */
  pktType: number;
  ifindex: number;
  /** ARPHRD_* (SKF_AD_HATYPE). */
  hatype: number;
  /** Offset of the network header in the bytes (SKF_NET_OFF loads). */
  networkOffset: number;
}

// Instruction classes and fields (<linux/bpf_common.h>, <linux/filter.h>).
const LD = 0x00;
const LDX = 0x01;
const ST = 0x02;
const STX = 0x03;
const ALU = 0x04;
const JMP = 0x05;
const RET = 0x06;
const MISC = 0x07;
const W = 0x00;
const H = 0x08;
const B = 0x10;
const IMM = 0x00;
const ABS = 0x20;
const IND = 0x40;
const MEM = 0x60;
const LEN = 0x80;
const MSH = 0xa0;
const K = 0x00;
const X = 0x08;
const A = 0x10;
const MEMWORDS = 16;

/** Ancillary offsets: SKF_AD_OFF + n (as the unsigned k), SKF_NET_OFF, SKF_LL_OFF. */
const SKF_AD_OFF = 0xfffff000;
const SKF_NET_OFF = 0xfff00000;
const SKF_LL_OFF = 0xffe00000;
const AD_PROTOCOL = 0;
const AD_PKTTYPE = 4;
const AD_IFINDEX = 8;
const AD_MARK = 20;
const AD_QUEUE = 24;
const AD_HATYPE = 28;
const AD_RXHASH = 32;
const AD_CPU = 36;
const AD_VLAN_TAG = 44;
const AD_VLAN_TAG_PRESENT = 48;
const AD_PAY_OFFSET = 52;
const AD_RANDOM = 56;
const AD_VLAN_TPID = 60;
/** SKF_AD_ALU_XOR_X (40) and the netlink ones (12, 16) exist in Linux but mean nothing here. */
const KNOWN_ANCILLARY = new Set([
  AD_PROTOCOL, AD_PKTTYPE, AD_IFINDEX, 12, 16, AD_MARK, AD_QUEUE, AD_HATYPE, AD_RXHASH, AD_CPU, 40,
  AD_VLAN_TAG, AD_VLAN_TAG_PRESENT, AD_PAY_OFFSET, AD_RANDOM, AD_VLAN_TPID,
]);

/** The opcodes bpf_check_classic accepts. */
const VALID = new Set<number>([
  ALU | 0x00 | K, ALU | 0x00 | X, ALU | 0x10 | K, ALU | 0x10 | X, ALU | 0x20 | K, ALU | 0x20 | X,
  ALU | 0x30 | K, ALU | 0x30 | X, ALU | 0x40 | K, ALU | 0x40 | X, ALU | 0x50 | K, ALU | 0x50 | X,
  ALU | 0x60 | K, ALU | 0x60 | X, ALU | 0x70 | K, ALU | 0x70 | X, ALU | 0x80, ALU | 0x90 | K,
  ALU | 0x90 | X, ALU | 0xa0 | K, ALU | 0xa0 | X,
  LD | W | ABS, LD | H | ABS, LD | B | ABS, LD | W | LEN, LD | W | IND, LD | H | IND, LD | B | IND,
  LD | IMM, LD | MEM, LDX | W | LEN, LDX | B | MSH, LDX | IMM, LDX | MEM, ST, STX,
  MISC | 0x00, MISC | 0x80, RET | K, RET | A,
  JMP | 0x00, JMP | 0x10 | K, JMP | 0x10 | X, JMP | 0x20 | K, JMP | 0x20 | X, JMP | 0x30 | K,
  JMP | 0x30 | X, JMP | 0x40 | K, JMP | 0x40 | X,
]);

function invalid(why: string): TunstackError {
  return new TunstackError('EINVAL', `bad BPF program: ${why}`, 'ioctl');
}

/**
 * Check a program as Linux does before attaching it (EINVAL otherwise) and return a normalised
 * copy (fields as unsigned integers of their C widths).
 */
export function checkBpfProgram(prog: unknown): BpfInstruction[] {
  if (!Array.isArray(prog)) throw new TunstackError('EFAULT', 'TUNATTACHFILTER takes an array of BPF instructions', 'ioctl');
  const n = prog.length;
  if (n === 0 || n > BPF_MAXINSNS) throw invalid(`${n} instructions (1..${BPF_MAXINSNS})`);
  const out: BpfInstruction[] = [];
  for (let pc = 0; pc < n; pc++) {
    const i = prog[pc] as Partial<BpfInstruction> | null;
    if (i === null || typeof i !== 'object') throw new TunstackError('EFAULT', `instruction ${pc} is not an object`, 'ioctl');
    const ins = { code: field(i.code, 0xffff, pc), jt: field(i.jt, 0xff, pc), jf: field(i.jf, 0xff, pc), k: field(i.k, 0xffffffff, pc) };
    const code = ins.code;
    if (!VALID.has(code)) throw invalid(`unknown opcode 0x${code.toString(16)} at ${pc}`);
    const cls = code & 0x07;
    const op = code & 0xf0;
    if (cls === ALU && (code & X) === 0 && (op === 0x30 || op === 0x90) && ins.k === 0) throw invalid(`division by constant 0 at ${pc}`);
    if (cls === ALU && (code & X) === 0 && (op === 0x60 || op === 0x70) && ins.k >= 32) throw invalid(`shift by ${ins.k} at ${pc}`);
    if (((cls === LD || cls === LDX) && (code & 0xe0) === MEM) || cls === ST || cls === STX) {
      if (ins.k >= MEMWORDS) throw invalid(`scratch word ${ins.k} at ${pc}`);
    }
    if (cls === JMP) {
      if (op === 0x00) {
        if (ins.k >= n - pc - 1) throw invalid(`jump beyond the end at ${pc}`);
      } else if (pc + ins.jt + 1 >= n || pc + ins.jf + 1 >= n) {
        throw invalid(`jump beyond the end at ${pc}`);
      }
    }
    if (cls === LD && (code & 0xe0) === ABS && ins.k >= SKF_AD_OFF && !KNOWN_ANCILLARY.has(ins.k - SKF_AD_OFF)) {
      throw invalid(`unknown ancillary load at ${pc}`);
    }
    out.push(ins);
  }
  const last = out[n - 1]!.code & 0x07;
  if (last !== RET) throw invalid('the last instruction is not a return');
  checkMemoryInitialised(out);
  return out;
}

function field(v: unknown, max: number, pc: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TunstackError('EFAULT', `instruction ${pc}: fields must be integers`, 'ioctl');
  // C stores the low bits: a negative k (-1 for 0xffffffff) is the same word.
  return max === 0xffffffff ? v >>> 0 : v & max;
}

/** Linux's check_load_and_stores: a scratch word is read only where every path wrote it. */
function checkMemoryInitialised(prog: BpfInstruction[]): void {
  const n = prog.length;
  const all = (1 << MEMWORDS) - 1;
  // Words known written on entry to each instruction (all bits until a jump reaches it). As Linux,
  // what falls through a return is not reset.
  const known = new Int32Array(n).fill(all);
  let cur = 0;
  for (let pc = 0; pc < n; pc++) {
    cur &= known[pc]!;
    const i = prog[pc]!;
    const cls = i.code & 0x07;
    if (cls === ST || cls === STX) cur |= 1 << i.k;
    else if ((cls === LD || cls === LDX) && (i.code & 0xe0) === MEM) {
      if ((cur & (1 << i.k)) === 0) throw invalid(`scratch word ${i.k} read before it is written at ${pc}`);
    } else if (cls === JMP) {
      if ((i.code & 0xf0) === 0x00) {
        known[pc + 1 + i.k]! &= cur;
        cur = all;
      } else {
        known[pc + 1 + i.jt]! &= cur;
        known[pc + 1 + i.jf]! &= cur;
        cur = all;
      }
    }
  }
}

/**
 * Run a checked program over `data[start, end)`: the bytes to keep (0: drop). `info` answers the
 * ancillary loads; `random` SKF_AD_RANDOM.
 */
export function runBpf(prog: readonly BpfInstruction[], data: Uint8Array, start: number, end: number, info: BpfPacketInfo, random: () => number): number {
  const len = end - start;
  const mem = new Uint32Array(MEMWORDS);
  let a = 0;
  let x = 0;
  for (let pc = 0; pc < prog.length; pc++) {
    const i = prog[pc]!;
    const code = i.code;
    const k = i.k;
    switch (code & 0x07) {
      case LD:
      case LDX: {
        const ldx = (code & 0x07) === LDX;
        const mode = code & 0xe0;
        let v: number;
        if (mode === IMM) v = k;
        else if (mode === MEM) v = mem[k]!;
        else if (mode === LEN) v = len;
        else if (mode === MSH) {
          if (k >= len) return 0;
          v = (data[start + k]! & 0x0f) << 2;
        } else {
          const size = (code & 0x18) === W ? 4 : (code & 0x18) === H ? 2 : 1;
          if (mode === ABS && k >= SKF_AD_OFF) {
            v = ancillary(k - SKF_AD_OFF, a, x, len, info, random);
          } else {
            const off = mode === IND ? (x + k) >>> 0 : k;
            const r = load(data, start, len, off, size, info.networkOffset);
            if (r < 0) return 0;
            v = r;
          }
        }
        if (ldx) x = v >>> 0;
        else a = v >>> 0;
        break;
      }
      case ST:
        mem[k] = a;
        break;
      case STX:
        mem[k] = x;
        break;
      case ALU: {
        const src = (code & X) !== 0 ? x : k;
        switch (code & 0xf0) {
          case 0x00: a = (a + src) >>> 0; break;
          case 0x10: a = (a - src) >>> 0; break;
          case 0x20: a = Math.imul(a, src) >>> 0; break;
          case 0x30:
            if (src === 0) return 0;
            a = Math.floor(a / src) >>> 0;
            break;
          case 0x40: a = (a | src) >>> 0; break;
          case 0x50: a = (a & src) >>> 0; break;
          case 0x60: a = (a << (src & 31)) >>> 0; break;
          case 0x70: a = a >>> (src & 31); break;
          case 0x80: a = -a >>> 0; break;
          case 0x90:
            if (src === 0) return 0;
            a = a % src >>> 0;
            break;
          default: a = (a ^ src) >>> 0; break;
        }
        break;
      }
      case JMP: {
        const op = code & 0xf0;
        if (op === 0x00) {
          pc += k;
          break;
        }
        const src = (code & X) !== 0 ? x : k;
        const t = op === 0x10 ? a === src : op === 0x20 ? a > src : op === 0x30 ? a >= src : (a & src) !== 0;
        pc += t ? i.jt : i.jf;
        break;
      }
      case RET:
        return ((code & 0x18) === A ? a : k) >>> 0;
      default:
        if ((code & 0xf8) === 0x00) x = a;
        else a = x;
    }
  }
  return 0;
}

/** A big-endian load of `size` bytes at `off` (SKF_NET_OFF / SKF_LL_OFF relative), -1 outside. */
function load(d: Uint8Array, start: number, len: number, off: number, size: number, net: number): number {
  let o = off;
  if (off >= SKF_LL_OFF) {
    o = off >= SKF_NET_OFF ? off - SKF_NET_OFF + net : off - SKF_LL_OFF;
  }
  if (o < 0 || o + size > len) return -1;
  const p = start + o;
  if (size === 1) return d[p]!;
  if (size === 2) return (d[p]! << 8) | d[p + 1]!;
  return ((d[p]! << 24) | (d[p + 1]! << 16) | (d[p + 2]! << 8) | d[p + 3]!) >>> 0;
}

function ancillary(n: number, a: number, x: number, len: number, info: BpfPacketInfo, random: () => number): number {
  switch (n) {
    case AD_PROTOCOL: return info.protocol;
    case AD_PKTTYPE: return info.pktType;
    case AD_IFINDEX: return info.ifindex;
    case AD_HATYPE: return info.hatype;
    case AD_PAY_OFFSET: return Math.min(info.networkOffset, len);
    case AD_RANDOM: return random() >>> 0;
    case 40: return (a ^ x) >>> 0; // SKF_AD_ALU_XOR_X
    default: return 0; // mark, queue, rxhash, cpu, VLAN tag/TPID (untagged), netlink: 0
  }
}
