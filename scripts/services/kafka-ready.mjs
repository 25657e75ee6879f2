// Kafka readiness probe for scripts/services.sh: exits 0 when the broker answers a metadata
// request listing at least one broker, 1 otherwise. Usage: node kafka-ready.mjs HOST:PORT
import { Admin } from "@platformatic/kafka";

const broker = process.argv[2] ?? "127.0.0.1:29092";
const admin = new Admin({
  clientId: "pgshovel-stack-ready",
  bootstrapBrokers: [broker],
  timeout: 3000,
  retries: 0,
});
const timer = setTimeout(() => {
  console.error(`kafka-ready: no answer from ${broker}`);
  process.exit(1);
}, 8000);
try {
  const metadata = await admin.metadata({ topics: [] });
  if (!metadata.brokers || metadata.brokers.size === 0) throw new Error("no broker in metadata");
  console.log(`kafka-ready: ${broker} answers (cluster ${metadata.id ?? "?"})`);
  process.exitCode = 0;
} catch (error) {
  console.error(`kafka-ready: ${broker}: ${error?.message ?? error}`);
  process.exitCode = 1;
} finally {
  clearTimeout(timer);
  await admin.close().catch(() => {});
}
