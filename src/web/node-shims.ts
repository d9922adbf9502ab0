/**
 * Browser stand-in for the one Node module the browser bundle still meets: node:fs, imported by
 * the pcap file part (PcapReader.open / fromFd, PcapWriter.toFile, FileSink in src/pcap/reader.ts
 * and src/pcap/writer.ts, a listed exception in .dependency-cruiser.cjs). A page has no files, so
 * these throw ENOSYS; pcap in a page goes to a `MemorySink` or any `ByteSink`, and is read with
 * `PcapReader.fromBytes` / `fromSource` / `readPcap`.
 *
 * Only the browser build (scripts/build-browser.ts) uses this file: it aliases node:fs to it; any
 * other `node:` import fails that build. Nothing is injected as a global: the core names no Node
 * global (Buffer, process, setImmediate).
 */
import { TunstackError } from '../core/errors.js';

function noFiles(call: string): never {
  throw new TunstackError('ENOSYS', `${call}: a browser page has no file system (write pcap to a MemorySink instead)`, call);
}

export function openSync(): number {
  return noFiles('open');
}
export function readSync(): number {
  return noFiles('read');
}
export function writeSync(): number {
  return noFiles('write');
}
export function closeSync(): void {
  noFiles('close');
}
export function mkdirSync(): void {
  noFiles('mkdir');
}
