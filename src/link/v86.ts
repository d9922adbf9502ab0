/**
 * v86 in process: plugs the NIC of a v86 emulator (npm `v86`, 0.5.x; ne2k or virtio) into a
 * FramePort, so the guest gets the sandbox's network with no socket in between:
 *
 *   const emulator = new V86({ wasm_path, bios, bzimage, initrd, net_device: { type: 'ne2k' } });
 *   const port = new FramePort();
 *   const net = new SandboxNetwork({ link: port });
 *   const link = new V86Link(emulator, port);
 *
 * The NIC's frames arrive on the emulator bus event `net<id>-send`, as a view of the NIC's memory
 * that the emulator reuses: the link copies each one before the stack sees it. Frames for the guest
 * go out with `bus.send('net<id>-receive', frame)`.
 *
 * The event fires inside the guest's write to the NIC's command register. The link does not run
 * the stack there: the copies wait (at most `pending` frames, beyond which they are dropped and
 * counted) and reach the stack on a microtask, once the emulator's current run of instructions has
 * returned, as frames from v86's own relays arrive; run synchronously, the stack's answers (ACKs,
 * data) would land in the NIC's receive ring in the middle of the guest's transmit and of its
 * interrupt handler. Leave `relay_url` unset (a relay would take the same bus events).
 *
 * A Linux guest on the ne2k needs one line in its init, for a bug of v86's interrupt controller
 * that frames from outside (ours or a relay's) trigger: v86's PIC can leave the cascade IRQ 2 in
 * service for good, after which the NIC's IRQ (10 or 11, on the slave) is never delivered again
 * ("NETDEV WATCHDOG: eth0: transmit queue 0 timed out", then silence). Marking IRQ 2
 * level-triggered in the master's ELCR (port 0x4d0, bit 2) avoids it; test/vm/helpers/v86.ts
 * (initPrologue) says why and does it, and README's v86 section has the line.
 *
 * The NIC has no backpressure: the ne2k's receive ring holds about ten full frames and drops what
 * does not fit. So the link hands the guest at most `burst` frames, then yields to the event loop
 * (where the emulator runs and the guest drains its ring) before the next ones; frames meanwhile
 * wait in the FramePort's bounded queue (dropped and counted beyond it).
 */
import { TunstackError } from '../core/errors.js';
import type { FramePort } from './frame-port.js';

type BusListener = (frame: Uint8Array) => void;

/** The part of a v86 emulator's message bus the link uses (`emulator.bus` on a `V86`). */
export interface V86Bus {
  register(name: string, fn: BusListener, thisValue: object): void;
  unregister(name: string, fn: BusListener): void;
  send(name: string, value: Uint8Array): void;
}

/**
 * A v86 emulator, as far as the link needs one: its message bus. v86's typings leave `bus` out,
 * so the link takes any object (a `V86`) and checks for the bus when constructed.
 */
export interface V86Emulator {
  bus: V86Bus;
}

export interface V86LinkOptions {
  /** The network device's id (v86's `net_device.id`, default 0): bus events `net<id>-*`. */
  id?: number;
  /** Frames handed to the NIC before yielding to the event loop (default 4, 1..1024). */
  burst?: number;
  /** How to run a function on a later turn of the event loop (default setImmediate, else setTimeout 0). */
  defer?: (fn: () => void) => void;
  /** Guest frames held between the NIC's send and the microtask that hands them to the stack (default 1024). */
  pending?: number;
}

export interface V86LinkStats {
  /** Frames the guest sent, and those dropped (too short, too long, or beyond `pending`). */
  framesIn: number;
  framesInDropped: number;
  /** Frames handed to the guest's NIC. */
  framesOut: number;
  /** Times the link yielded to the event loop with frames waiting. */
  yields: number;
}

/** Node's setImmediate where the platform has it (looked up on globalThis: this file names no Node API), else setTimeout 0. */
function defaultDefer(fn: () => void): void {
  const immediate = (globalThis as { setImmediate?: (f: () => void) => unknown }).setImmediate;
  if (typeof immediate === 'function') immediate(fn);
  else setTimeout(fn, 0);
}

export class V86Link {
  readonly stats: V86LinkStats = { framesIn: 0, framesInDropped: 0, framesOut: 0, yields: 0 };
  private readonly bus: V86Bus;
  private readonly sendEvent: string;
  private readonly receiveEvent: string;
  private readonly burst: number;
  private readonly defer: (fn: () => void) => void;
  private handed = 0;
  private waiting = false;
  private readonly maxPending: number;
  private inbound: Uint8Array[] = [];
  private flushing = false;
  private closed = false;
  private readonly onSend: BusListener;

  constructor(
    emulator: V86Emulator | object,
    private readonly port: FramePort,
    options: V86LinkOptions = {},
  ) {
    const id = options.id ?? 0;
    const burst = options.burst ?? 4;
    if (!Number.isInteger(id) || id < 0) throw new TunstackError('EINVAL', `V86Link: id ${String(id)} is not a non-negative integer`);
    if (!Number.isInteger(burst) || burst < 1 || burst > 1024) throw new TunstackError('EINVAL', `V86Link: burst ${String(burst)} outside 1..1024`);
    const pending = options.pending ?? 1024;
    if (!Number.isInteger(pending) || pending < 1 || pending > 65536) throw new TunstackError('EINVAL', `V86Link: pending ${String(pending)} outside 1..65536`);
    this.maxPending = pending;
    const bus = (emulator as Partial<V86Emulator> | null)?.bus;
    if (bus === undefined || typeof bus.register !== 'function' || typeof bus.send !== 'function') throw new TunstackError('EINVAL', 'V86Link: the emulator has no message bus (is it a v86 V86?)');
    this.bus = bus;
    this.burst = burst;
    this.defer = options.defer ?? defaultDefer;
    this.sendEvent = `net${id}-send`;
    this.receiveEvent = `net${id}-receive`;
    this.onSend = (view) => {
      if (this.closed || !(view instanceof Uint8Array)) return;
      this.stats.framesIn++;
      if (this.inbound.length >= this.maxPending) {
        this.stats.framesInDropped++;
        return;
      }
      this.inbound.push(view.slice());
      if (!this.flushing) {
        this.flushing = true;
        queueMicrotask(() => this.flushInbound());
      }
    };
    bus.register(this.sendEvent, this.onSend, this);
    port.discard();
    port.setSink((frame) => this.deliver(frame));
  }

  /** Stop: unhook from the bus and the port (the port and the emulator stay open); guest frames not yet handed on are dropped. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.inbound = [];
    this.bus.unregister(this.sendEvent, this.onSend);
    this.port.setSink(null);
  }

  /** Hands the guest's frames to the stack, outside the emulator's run. */
  private flushInbound(): void {
    this.flushing = false;
    const frames = this.inbound;
    this.inbound = [];
    for (const f of frames) {
      if (this.closed) return;
      if (!this.port.send(f)) this.stats.framesInDropped++;
    }
  }

  private deliver(frame: Uint8Array): boolean {
    if (this.closed) return true;
    this.bus.send(this.receiveEvent, frame);
    this.stats.framesOut++;
    if (++this.handed < this.burst) return true;
    // Let the emulator run (and the guest drain its ring) before the next frames.
    if (!this.waiting) {
      this.waiting = true;
      this.stats.yields++;
      this.defer(() => {
        this.waiting = false;
        this.handed = 0;
        if (!this.closed) this.port.resume();
      });
    }
    return false;
  }
}
