/**
 * Rewrites the golden files from test/unit/stream/sample.ts. Run it by hand,
 * only when the stream format changes on purpose, then review the diff:
 *
 *   npx tsc -p tsconfig.json && node dist/test/unit/stream/regenerate-fixtures.js --write
 *
 * Without --write (e.g. when a test runner loads it) it does nothing.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { FIXTURES, sampleJsonLines, sampleProtobufFrames } from "./fixtures.js";

if (process.argv.includes("--write")) {
  mkdirSync(FIXTURES, { recursive: true });
  writeFileSync(new URL("stream.jsonl", FIXTURES), sampleJsonLines());
  writeFileSync(new URL("stream.pb", FIXTURES), sampleProtobufFrames());
  process.stdout.write(`wrote ${new URL("stream.jsonl", FIXTURES).pathname} and stream.pb\n`);
}
