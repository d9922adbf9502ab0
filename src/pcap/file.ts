/**
 * The pcap file part: reading and writing capture files through node:fs. The codec (reader.ts,
 * writer.ts) names no Node module and takes its bytes from a `SyncByteSource`, an async iterable
 * or memory, and gives them to a `ByteSink`; this module adds files to it, as the Node entry
 * `tunstack/pcap` exports it: `PcapReader.open(path)`, `PcapReader.fromFd(fd)`,
 * `PcapWriter.toFile(path)` and `FileSink`.
 */
import { closeSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import { expectInteger, expectString, optionalBoolean } from '../core/validate.js';
import { PcapReader as PcapCodecReader, type PcapReaderOptions, type SyncByteSource } from './reader.js';
import { PcapWriter as PcapCodecWriter, type ByteSink, type PcapWriterOptions } from './writer.js';

/** Bytes written straight to a file, synchronously. */
export class FileSink implements ByteSink {
  private fd: number;
  constructor(path: string) {
    this.fd = openSync(path, 'w');
  }
  write(bytes: Uint8Array): void {
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
  }
  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

function fdSource(fd: number, owned: boolean): SyncByteSource {
  let open = true;
  return {
    read(into, offset, length) {
      return readSync(fd, into, offset, length, null);
    },
    close() {
      if (owned && open) closeSync(fd);
      open = false;
    },
  };
}

/** The pcap/pcapng reader with files: see src/pcap/reader.ts. */
export class PcapReader extends PcapCodecReader {
  /** Open a capture file. Throws ParseError if it is not a pcap/pcapng file. */
  static open(path: string, options: PcapReaderOptions = {}): PcapReader {
    expectString(path, 'PcapReader.open', 'path');
    return PcapReader.openChecked(() => fdSource(openSync(path, 'r'), true), options) as PcapReader;
  }

  /** Read from an open file descriptor (not closed by the reader unless `closeFd`). */
  static fromFd(fd: number, options: PcapReaderOptions & { closeFd?: boolean } = {}): PcapReader {
    expectInteger(fd, 'PcapReader.fromFd', 'fd', 0, 0x7fffffff);
    optionalBoolean(options.closeFd, 'PcapReader.fromFd', 'options.closeFd');
    return PcapReader.openChecked(() => fdSource(fd, options.closeFd ?? false), options) as PcapReader;
  }
}

/** The pcap writer with files: see src/pcap/writer.ts. */
export class PcapWriter extends PcapCodecWriter {
  /** Open a file and write to it synchronously (`mkdir`: create its directory first, as `mkdir -p`). */
  static toFile(path: string, options: PcapWriterOptions & { mkdir?: boolean } = {}): PcapWriter {
    expectString(path, 'PcapWriter.toFile', 'path');
    optionalBoolean(options.mkdir, 'PcapWriter.toFile', 'options.mkdir');
    if (options.mkdir === true && path.includes('/')) mkdirSync(path.slice(0, path.lastIndexOf('/')) || '/', { recursive: true });
    return new PcapWriter(new FileSink(path), options);
  }
}
