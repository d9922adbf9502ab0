/**
 * Dual-stack TCP listeners as Linux with bindv6only=0: an IPv6 wildcard listener that is not
 * v6Only takes IPv4 SYNs (its children are IPv4 endpoints) and holds the port for both families.
 */
import { describe, expect, it } from 'vitest';
import type { TcpEndpoint } from '../../src/index.js';
import { pair } from './helpers/tcp.js';

describe('dual-stack TCP listeners', () => {
  it('an IPv6 wildcard listener accepts IPv4; a v6Only one refuses it', () => {
    const p = pair();
    const dual = p.b.tcp({ family: 6 });
    dual.bind(null, 80);
    dual.listen();
    const children: TcpEndpoint[] = [];
    dual.on('connection', (c) => children.push(c));
    const c = p.a.tcp();
    c.connect('10.0.0.2', 80);
    p.clock.runUntilIdle(1000);
    expect(c.state).toBe('ESTABLISHED');
    expect(children.map((x) => [x.family, x.remoteAddress, x.localAddress])).toEqual([[4, '10.0.0.1', '10.0.0.2']]);

    const only = p.b.tcp({ family: 6, v6Only: true });
    only.bind(null, 81);
    only.listen();
    const c2 = p.a.tcp();
    const errs: string[] = [];
    c2.on('error', (e) => errs.push(e.code));
    c2.connect('10.0.0.2', 81);
    p.clock.runUntilIdle(1000);
    expect(errs).toEqual(['ECONNREFUSED']);
  });

  it('0.0.0.0 and a dual-stack :: conflict on one port; a v6Only :: does not', () => {
    const p = pair();
    const v4 = p.b.tcp();
    v4.bind(null, 80);
    v4.listen();
    // Without SO_REUSEADDR the bind fails; with it, the listen does (Linux inet_csk_get_port).
    expect(() => p.b.tcp({ family: 6 }).bind(null, 80)).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
    const reuse = p.b.tcp({ family: 6 });
    expect(() => {
      reuse.bind(null, 80, { reuseAddress: true });
      reuse.listen();
    }).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
    const only = p.b.tcp({ family: 6, v6Only: true });
    only.bind(null, 80);
    only.listen();
    expect(only.state).toBe('LISTEN');
    // And the other way round: a dual-stack :: first keeps 0.0.0.0 off its port.
    const dual = p.b.tcp({ family: 6 });
    dual.bind(null, 90);
    dual.listen();
    expect(() => p.b.tcp().bind(null, 90)).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
  });

  it('an IPv4 listener on the port wins over the dual-stack one for IPv4', () => {
    const p = pair();
    const only = p.b.tcp({ family: 6, v6Only: true });
    only.bind(null, 80);
    only.listen();
    const v4 = p.b.tcp();
    v4.bind('10.0.0.2', 80);
    v4.listen();
    const got: number[] = [];
    v4.on('connection', () => got.push(4));
    only.on('connection', () => got.push(6));
    const c = p.a.tcp();
    c.connect('10.0.0.2', 80);
    p.clock.runUntilIdle(1000);
    expect(got).toEqual([4]);
  });
});
