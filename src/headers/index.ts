export * from './checksum.js';
export * from './address.js';
export * from './ethernet.js';
