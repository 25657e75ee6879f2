import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { describeError, PgshovelError } from "../errors.js";
import type { Logger } from "../log.js";
import type { HealthReport } from "./health.js";
import type { ListenAddress } from "./listen-address.js";

/** The monitoring endpoint of a long-running program: /metrics and /health. */
export interface MonitoringServer {
  /** Where it listens, e.g. "http://127.0.0.1:9187" (with the port it got for port 0). */
  readonly url: string;
  close(): Promise<void>;
}

/** Options of {@link serveMonitoring}. */
export interface MonitoringServerOptions {
  listen: ListenAddress;
  registry: Registry;
  /** What /health answers: 200 when `healthy`, 503 otherwise, the report as JSON. */
  health: () => Promise<Pick<HealthReport, "healthy">>;
  logger: Logger;
}

/**
 * Serves `GET /metrics` (Prometheus text format) and `GET /health` (200 or 503 with a
 * JSON body). Anything else is 404.
 */
export async function serveMonitoring(options: MonitoringServerOptions): Promise<MonitoringServer> {
  const { registry, health, logger } = options;
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    const answer = async () => {
      if (request.method !== "GET" && request.method !== "HEAD") {
        response.writeHead(405, { allow: "GET, HEAD" }).end();
      } else if (path === "/metrics") {
        const body = await registry.metrics();
        response.writeHead(200, { "content-type": registry.contentType }).end(body);
      } else if (path === "/health") {
        const report = await health();
        response
          .writeHead(report.healthy ? 200 : 503, { "content-type": "application/json" })
          .end(`${JSON.stringify(report)}\n`);
      } else {
        response.writeHead(404, { "content-type": "text/plain" }).end("try /metrics or /health\n");
      }
    };
    answer().catch((error: unknown) => {
      logger.warn({ err: describeError(error), path }, "monitoring request failed");
      if (!response.headersSent) response.writeHead(500, { "content-type": "text/plain" });
      response.end("internal error\n");
    });
  });
  // A scrape that hangs must not keep the process from exiting.
  server.unref();
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) =>
      reject(
        new PgshovelError(
          "INVALID_ARGUMENT",
          `cannot serve metrics on ${options.listen.host}:${options.listen.port}: ${error.message}`,
          { cause: error, hint: "choose another --metrics-listen address" },
        ),
      ),
    );
    server.listen(options.listen.port, options.listen.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  logger.info({ metrics: `${url}/metrics`, health: `${url}/health` }, "serving metrics and health");
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
