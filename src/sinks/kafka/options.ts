import type { ConnectionOptions as TlsOptions } from "node:tls";
import { allowedSASLMechanisms, type SASLOptions } from "@platformatic/kafka";
import { z } from "zod";
import { PgshovelError } from "../../errors.js";
import { CODEC_NAMES } from "../../stream/codec.js";

import { COMPRESSIONS, DEFAULT_COMPRESSION } from "./compression.js";

export { COMPRESSIONS, type Compression, DEFAULT_COMPRESSION } from "./compression.js";

const brokerAddress = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^\s:]+):\d{1,5}$/, "must be host:port");

/** The schema of the Kafka sink's options. */
export const kafkaSinkOptionsSchema = z
  .object({
    brokers: z.array(brokerAddress).min(1, "must list at least one broker"),
    topic: z
      .string()
      .regex(/^[a-zA-Z0-9._-]{1,249}$/, "must be 1 to 249 of the characters a-z A-Z 0-9 . _ -"),
    codec: z.enum(CODEC_NAMES as unknown as ["json", "protobuf"]),
    compression: z.enum(COMPRESSIONS).default(DEFAULT_COMPRESSION),
    replicationFactor: z.number().int().min(1).max(32_767).default(1),
    /** `pgshovel.<cluster>.<set>.<consumer>`: a second relay with the same id fences the first. */
    transactionalId: z.string().min(1, "must not be empty"),
    clientId: z.string().min(1).optional(),
    /**
     * How long one batch's Kafka transaction may stay open; the broker aborts it
     * after that. @platformatic/kafka also uses it as the produce acks timeout.
     */
    transactionTimeoutMs: z.number().int().min(1_000).max(900_000).default(60_000),
    tls: z
      .custom<TlsOptions>((v) => typeof v === "object" && v !== null, "must be node:tls options")
      .optional(),
    sasl: z
      .custom<SASLOptions>(
        (v) =>
          typeof v === "object" &&
          v !== null &&
          (allowedSASLMechanisms as unknown[]).includes((v as { mechanism?: unknown }).mechanism),
        `must have a mechanism among ${allowedSASLMechanisms.join(", ")}`,
      )
      .optional(),
  })
  .strict();

/** The Kafka sink's options as a caller writes them (defaults may be left out). */
export type KafkaSinkOptionsInput = z.input<typeof kafkaSinkOptionsSchema>;

/** The Kafka sink's options, validated, defaults applied. */
export type KafkaSinkConfig = z.output<typeof kafkaSinkOptionsSchema>;

/** Validates `input`; throws PgshovelError("INVALID_ARGUMENT") naming the bad option. */
export function parseKafkaSinkOptions(input: unknown): KafkaSinkConfig {
  const result = kafkaSinkOptionsSchema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const path = issue.path.length === 0 ? "(options)" : issue.path.join(".");
    return `${path}: ${issue.message}`;
  });
  throw new PgshovelError("INVALID_ARGUMENT", `invalid Kafka sink options: ${problems.join("; ")}`);
}
