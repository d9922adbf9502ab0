export * from './endpoint.js';
export * from './queue.js';
export * from './channel.js';
export * from './loopback.js';
export * from './wire.js';
export * from './sniffer.js';
export * from './ethernet.js';
export * from './fault.js';
