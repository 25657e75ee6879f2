/**
 * What pgshovel reaches inside node-zookeeper-client (1.1.x), kept in this one file.
 *
 * The library has no way to drop a connection that stopped answering, to abandon a connection
 * attempt, or to survive a reply it cannot parse: `close()` only queues a close request, so a
 * session on a frozen server keeps its socket (and the process) alive until the server
 * resumes, and a reply read in the wrong state — the handshake answer of an attempt that was
 * closed before it completed — throws `Unknown code: …` from a socket event handler, which
 * kills the process. The functions below close these gaps on the client's ConnectionManager.
 */
import type { Socket } from "node:net";
import type zookeeper from "node-zookeeper-client";
import { PgshovelError } from "../errors.js";

// ConnectionManager's states (lib/ConnectionManager.js, STATES).
const CONNECTED = 2;
const CONNECTED_READ_ONLY = 3;
const CLOSING = -1;
const CLOSED = -2;

/** A server of the connection string. */
export interface ZkServer {
  host: string;
  port: number | string;
}

/** The fields and methods of the ConnectionManager used here. */
interface ConnectionManagerView {
  state: number;
  socket?: Socket;
  pendingBuffer: Buffer | null;
  connectTimeoutHandler: NodeJS.Timeout | null;
  chrootPath?: string;
  connect(): void;
  setState(state: number): void;
  findNextServer(callback: (server: ZkServer) => void): void;
  onSocketConnected(): void;
  onSocketData(buffer: Buffer): void;
  onSocketError(error: Error): void;
}

/** What the connection reports to its owner. */
export interface ConnectionHooks {
  /** A socket error, e.g. ECONNREFUSED, with the server being tried. */
  socketError(error: NodeJS.ErrnoException, server: ZkServer | undefined): void;
  /** A reply the client library could not read; the connection has been reset. */
  unreadableReply(error: unknown): void;
}

/** Control over one client's connection. */
export interface Connection {
  /** True while a session is established on the current socket. */
  readonly established: boolean;
  /** Drops the current socket: the client reconnects, to the next server of the ensemble first. */
  reset(): void;
  /**
   * Ends the client for good. An established session is closed politely (the server then
   * removes its ephemeral nodes at once) and its socket destroyed if the server has not
   * confirmed within `graceMs`; an attempt still connecting is abandoned at once.
   */
  shutDown(graceMs: number): void;
}

function viewOf(client: zookeeper.Client): ConnectionManagerView {
  const manager = (client as unknown as { connectionManager?: ConnectionManagerView })
    .connectionManager;
  const methods = [
    "connect",
    "setState",
    "findNextServer",
    "onSocketConnected",
    "onSocketData",
    "onSocketError",
  ] as const;
  if (!manager || methods.some((name) => typeof manager[name] !== "function")) {
    throw new PgshovelError(
      "INTERNAL",
      "node-zookeeper-client's ConnectionManager is not what pgshovel expects (library version changed?)",
    );
  }
  return manager;
}

/**
 * Instruments a client before it connects (the socket handlers are bound at each connection
 * attempt, so replacing the methods on the instance takes effect from the first one).
 */
export function instrument(client: zookeeper.Client, hooks: ConnectionHooks): Connection {
  const manager = viewOf(client);
  let server: ZkServer | undefined;
  let ended = false;
  let closingPolitely = false;

  const findNextServer = manager.findNextServer;
  manager.findNextServer = (callback) =>
    findNextServer.call(manager, (next) => {
      server = next;
      callback(next);
    });

  const onSocketConnected = manager.onSocketConnected;
  manager.onSocketConnected = () => {
    if (ended) {
      // An attempt that was under way when the client was shut down: abandon it.
      manager.socket?.destroy();
      return;
    }
    // A fresh connection starts a fresh stream of replies.
    manager.pendingBuffer = null;
    onSocketConnected.call(manager);
  };

  const onSocketData = manager.onSocketData;
  manager.onSocketData = (buffer) => {
    // After an abandoned attempt nothing on the socket is worth reading.
    if (ended && !closingPolitely) return;
    try {
      onSocketData.call(manager, buffer);
    } catch (error) {
      drop();
      if (!ended) hooks.unreadableReply(error);
    }
  };

  const onSocketError = manager.onSocketError;
  manager.onSocketError = (error) => {
    if (!ended) hooks.socketError(error as NodeJS.ErrnoException, server);
    onSocketError.call(manager, error);
  };

  const drop = () => {
    if (manager.connectTimeoutHandler) clearTimeout(manager.connectTimeoutHandler);
    manager.pendingBuffer = null;
    manager.socket?.destroy();
  };

  return {
    get established() {
      return manager.state === CONNECTED || manager.state === CONNECTED_READ_ONLY;
    },
    reset() {
      if (!ended) drop();
    },
    shutDown(graceMs: number) {
      if (ended) return;
      ended = true;
      const established = manager.state === CONNECTED || manager.state === CONNECTED_READ_ONLY;
      // Nothing reconnects from now on, whatever the state machine decides.
      manager.connect = () => {};
      if (established) {
        closingPolitely = true;
        client.close();
        setTimeout(drop, graceMs).unref();
        return;
      }
      // A close request written before the handshake completed would make the handshake's
      // answer be read as the close's reply: abandon the attempt instead.
      if (manager.state !== CLOSED) manager.setState(CLOSING);
      drop();
    },
  };
}
