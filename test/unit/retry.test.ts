import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PgshovelError } from "../../src/errors.js";
import { Backoff, withRetry } from "../../src/retry.js";

describe("backoff and retry", () => {
  test("a backoff doubles from its initial delay up to its bound, and starts again after a reset", () => {
    const backoff = new Backoff({ initialDelayMs: 200, maxDelayMs: 1000 });
    assert.deepEqual(
      [backoff.next(), backoff.next(), backoff.next(), backoff.next()],
      [200, 400, 800, 1000],
    );
    backoff.reset();
    assert.equal(backoff.next(), 200);
  });

  test("a jittered backoff waits between half and all of each delay", () => {
    const backoff = new Backoff({ initialDelayMs: 100, maxDelayMs: 400, jitter: true });
    for (const bound of [100, 200, 400, 400]) {
      const delay = backoff.next();
      assert.ok(delay >= bound / 2 && delay <= bound, `${delay} within [${bound / 2}, ${bound}]`);
    }
  });

  test("withRetry retries retryable errors within its attempts and rethrows the rest at once", async () => {
    const delays: number[] = [];
    let calls = 0;
    const result = await withRetry(
      async (attempt) => {
        calls++;
        if (attempt < 3) throw new PgshovelError("KAFKA_UNAVAILABLE", "down", { retryable: true });
        return attempt;
      },
      { attempts: 5, initialDelayMs: 1, maxDelayMs: 2, onRetry: (_e, _a, ms) => delays.push(ms) },
    );
    assert.equal(result, 3);
    assert.equal(calls, 3);
    assert.equal(delays.length, 2);
    const fatal = new PgshovelError("INVALID_ARGUMENT", "no");
    await assert.rejects(
      withRetry(
        async () => {
          throw fatal;
        },
        { attempts: 5, initialDelayMs: 1, maxDelayMs: 1 },
      ),
      (error) => error === fatal,
    );
  });
});
