export * from './writer.js';
export * from './reader.js';
// The Node entry's reader and writer have files (src/pcap/file.ts); they replace the codec's.
export { FileSink, PcapReader, PcapWriter } from './file.js';
