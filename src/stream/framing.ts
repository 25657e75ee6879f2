import { decodeFail } from "./checks.js";

/**
 * Size-delimited framing for binary messages in a file or pipe: each frame is
 * the payload's length as a protobuf varint, then the payload — the format of
 * Java's writeDelimitedTo and of @bufbuild/protobuf's sizeDelimitedEncode.
 */

/** One frame: the varint length of `payload`, then `payload`. */
export function frameDelimited(payload: Uint8Array): Uint8Array {
  let size = 1;
  for (let n = payload.length; n >= 0x80; n = Math.floor(n / 0x80)) size++;
  const out = new Uint8Array(size + payload.length);
  let n = payload.length;
  let i = 0;
  while (n >= 0x80) {
    out[i++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[i++] = n;
  out.set(payload, i);
  return out;
}

/** Splits bytes made of whole frames into their payloads; throws DECODE_ERROR on a torn frame. */
export function splitDelimited(bytes: Uint8Array): Uint8Array[] {
  const payloads: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    let length = 0;
    let shift = 1;
    for (;;) {
      if (at >= bytes.length) return decodeFail(`frame ${payloads.length}`, "truncated length");
      const byte = bytes[at++]!;
      length += (byte & 0x7f) * shift;
      if (byte < 0x80) break;
      shift *= 0x80;
      if (shift > 2 ** 35) return decodeFail(`frame ${payloads.length}`, "length varint too long");
    }
    if (at + length > bytes.length) {
      return decodeFail(
        `frame ${payloads.length}`,
        `truncated: ${length} bytes announced, ${bytes.length - at} left`,
      );
    }
    payloads.push(bytes.subarray(at, at + length));
    at += length;
  }
  return payloads;
}
