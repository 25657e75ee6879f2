import type { MessageToProduce } from "@platformatic/kafka";
import { HEADERS } from "../../kafka/record-format.js";
import type { Codec } from "../../stream/codec.js";
import type { Message } from "../../stream/types.js";

/**
 * How a stream message becomes a Kafka record. The value is the codec's bytes;
 * the key and headers repeat a few fields so that tools can route and filter
 * without decoding (names in src/kafka/record-format.ts, layout in docs/kafka.md).
 */

/** A record ready for the producer. */
export type KafkaRecordToProduce = MessageToProduce<Buffer, Buffer, Buffer, Buffer>;

const headerNames = {
  kind: Buffer.from(HEADERS.kind),
  schema: Buffer.from(HEADERS.schema),
  table: Buffer.from(HEADERS.table),
  operation: Buffer.from(HEADERS.operation),
};

/** Turns the messages of one batch into records; caches the repeated header values. */
export class RecordBuilder {
  readonly #codec: Codec;
  readonly #topic: string;
  readonly #strings = new Map<string, Buffer>();

  constructor(codec: Codec, topic: string) {
    this.#codec = codec;
    this.#topic = topic;
  }

  #bytes(text: string): Buffer {
    let bytes = this.#strings.get(text);
    if (bytes === undefined) {
      bytes = Buffer.from(text, "utf8");
      // Table names repeat; a stream with very many distinct tables should not grow this for ever.
      if (this.#strings.size > 10_000) this.#strings.clear();
      this.#strings.set(text, bytes);
    }
    return bytes;
  }

  /** The record of `message`, keyed by `key` (the batch's {@link recordKey} as bytes). */
  build(message: Message, key: Buffer): KafkaRecordToProduce {
    const encoded = this.#codec.encode(message);
    const value = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
    const headers = new Map<Buffer, Buffer>([[headerNames.kind, this.#bytes(message.body.kind)]]);
    if (message.body.kind === "mutation") {
      const { schema, table, operation } = message.body.mutation;
      headers.set(headerNames.schema, this.#bytes(schema));
      headers.set(headerNames.table, this.#bytes(table));
      headers.set(headerNames.operation, this.#bytes(operation));
    }
    return { topic: this.#topic, partition: 0, key, value, headers };
  }
}
