/**
 * The protobuf wire primitives over one growing, reused byte buffer: varints of 32- and 64-bit
 * integers, strings, and length-delimited parts whose prefix is reserved up front. Pure, no
 * I/O; the stream's protobuf encoder (codec-protobuf.ts) writes its messages with it.
 */

/** The buffer a writer starts with, and the largest it keeps between messages. */
const INITIAL_CAPACITY = 4096;
const MAX_KEPT_CAPACITY = 1 << 20;

/** Strings up to this many UTF-16 units are copied by a JS loop while they are ASCII. */
const ASCII_LOOP_MAX = 256;

const MAX_SAFE_BIGINT = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE_BIGINT = -MAX_SAFE_BIGINT;
const UINT32_BIGINT_MASK = 0xffffffffn;

const utf8 = new TextEncoder();

/** Writes the varint of `n` (an unsigned 32-bit integer) at `pos` of `buf`; returns the end. */
function putVarint32(buf: Uint8Array, pos: number, n: number): number {
  while (n > 0x7f) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[pos++] = n;
  return pos;
}

/** The number of bytes of the varint of `n`, an unsigned 32-bit integer. */
export function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

/**
 * A growing byte buffer with the protobuf wire primitives. Length-delimited
 * parts are written with {@link fork} / {@link join}: room for the length
 * prefix is reserved up front (a guess), and the payload is moved only when
 * the guess was wrong.
 */
export class WireWriter {
  buf = new Uint8Array(INITIAL_CAPACITY);
  pos = 0;
  /** Prefix sizes of the last row and mutation: the codec's guesses for the next ones. */
  rowPrefix = 2;
  mutationPrefix = 2;

  /** Makes room for `n` more bytes. */
  ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.grow(n);
  }

  /** Doubles the buffer until `n` more bytes fit, keeping what was written. */
  grow(n: number): void {
    let capacity = this.buf.length * 2;
    while (capacity < this.pos + n) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
  }

  /** A copy of the bytes written (the caller keeps it), and a reset writer. */
  finish(): Uint8Array {
    const out = this.buf.slice(0, this.pos);
    this.pos = 0;
    // One huge message should not pin its buffer for the life of the process.
    if (this.buf.length > MAX_KEPT_CAPACITY) this.buf = new Uint8Array(INITIAL_CAPACITY);
    return out;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** An unsigned 32-bit varint. */
  varint32(n: number): void {
    this.ensure(5);
    this.pos = putVarint32(this.buf, this.pos, n);
  }

  /** The varint of a non-negative safe integer (below 2^53: at most 8 bytes). */
  varintSafe(n: number): void {
    this.ensure(8);
    const buf = this.buf;
    let pos = this.pos;
    // Above 32 bits shifts would truncate: divide instead (exact for safe integers).
    // `n & 0x7f` is right for any safe integer, as ToInt32 keeps the low 32 bits.
    while (n > 0xffffffff) {
      buf[pos++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    while (n > 0x7f) {
      buf[pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    buf[pos++] = n;
    this.pos = pos;
  }

  /** The varint of the unsigned 64-bit integer hi·2^32 + lo (hi and lo unsigned 32-bit). */
  varint64(lo: number, hi: number): void {
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    while (hi !== 0 || lo > 0x7f) {
      buf[pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    buf[pos++] = lo;
    this.pos = pos;
  }

  /** An int64 varint of a safe integer: negatives are 10-byte two's complement, as protobuf wants. */
  int64Safe(n: number): void {
    if (n >= 0) this.varintSafe(n);
    // ToUint32 keeps the low word; the floored quotient is the high word of the two's complement.
    else this.varint64(n >>> 0, Math.floor(n / 0x100000000) >>> 0);
  }

  /** A uint64 varint of a bigint in [0, 2^64). */
  uint64(v: bigint): void {
    if (v <= MAX_SAFE_BIGINT) this.varintSafe(Number(v));
    else this.varint64(Number(v & UINT32_BIGINT_MASK), Number(v >> 32n));
  }

  /** An int64 varint of a bigint in [-2^63, 2^63). */
  int64(v: bigint): void {
    if (v < MIN_SAFE_BIGINT) {
      const u = BigInt.asUintN(64, v);
      this.varint64(Number(u & UINT32_BIGINT_MASK), Number(u >> 32n));
    } else if (v <= MAX_SAFE_BIGINT) {
      this.int64Safe(Number(v));
    } else {
      this.uint64(v);
    }
  }

  /**
   * A string as its UTF-8 byte length and bytes. TextEncoder, like toBinary,
   * turns a lone surrogate into U+FFFD.
   */
  string(s: string): void {
    const length = s.length;
    // A UTF-16 unit is at most 3 UTF-8 bytes; the prefix at most 5.
    this.ensure(length * 3 + 5);
    const buf = this.buf;
    const start = this.pos;
    // The prefix is guessed from the ASCII case (one byte per unit); UTF-8 is never shorter.
    const guess = varintSize(length);
    if (length <= ASCII_LOOP_MAX) {
      // For short strings a JS loop beats the call into TextEncoder.
      let pos = start + guess;
      let i = 0;
      for (; i < length; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        buf[pos++] = c;
      }
      if (i === length) {
        putVarint32(buf, start, length);
        this.pos = pos;
        return;
      }
    }
    const { written } = utf8.encodeInto(s, buf.subarray(start + guess));
    const size = varintSize(written);
    if (size !== guess) buf.copyWithin(start + size, start + guess, start + guess + written);
    this.pos = putVarint32(buf, start, written) + written;
  }

  /** Reserves `reserve` bytes for a length prefix; returns where it goes, for {@link join}. */
  fork(reserve: number): number {
    const at = this.pos;
    this.ensure(reserve);
    this.pos += reserve;
    return at;
  }

  /** Writes the length prefix of what followed {@link fork}; returns the prefix's size. */
  join(at: number, reserve: number): number {
    const length = this.pos - at - reserve;
    const size = varintSize(length);
    if (size !== reserve) {
      if (size > reserve) this.ensure(size - reserve);
      this.buf.copyWithin(at + size, at + reserve, this.pos);
    }
    this.pos = putVarint32(this.buf, at, length) + length;
    return size;
  }
}
