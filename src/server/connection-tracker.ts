import type { Socket } from "node:net";
import type { FastifyInstance } from "fastify";

/** Ends a closing server's connections without cutting a request off, and then the ones that carry none. */
export interface ConnectionTracker {
  /**
   * From now on every response says `Connection: close` and each connection ends once its last response is
   * complete. Nothing is cut here: a connection just accepted (a kubelet's probe, a load balancer's request) has
   * not sent its request yet and would read a reset, not the answer the drain owes it.
   */
  startClosing(): void;
  /** Cuts the connections that carry no request: called once every running response has had its last frame. */
  closeUnused(): void;
}

/**
 * HTTP clients open spare keep-alive connections ahead of need (undici does); Node's `server.close()` closes only
 * the connections idle at that moment, and leaves one that has not sent a request yet open until its headers
 * timeout and one whose response finishes later open for the whole keep-alive timeout, so a shutdown would
 * otherwise hang for a minute after its last stream ended.
 */
export function trackConnections(app: FastifyInstance): ConnectionTracker {
  const sockets = new Set<Socket>();
  const busy = new Map<Socket, number>();
  let isClosing = false;
  app.server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      busy.delete(socket);
    });
  });
  app.addHook("onRequest", async (request, reply) => {
    const socket = request.raw.socket;
    busy.set(socket, (busy.get(socket) ?? 0) + 1);
    if (isClosing) reply.header("connection", "close");
  });
  app.addHook("onResponse", async (request) => {
    const socket = request.raw.socket;
    const count = (busy.get(socket) ?? 1) - 1;
    if (count > 0) {
      busy.set(socket, count);
      return;
    }
    busy.delete(socket);
    // end(), not destroy(): the response's last bytes may still be on their way out.
    if (isClosing) socket.end();
  });
  return {
    startClosing: () => {
      isClosing = true;
    },
    closeUnused: () => {
      for (const socket of sockets) {
        if (!busy.has(socket)) socket.destroy();
      }
    },
  };
}
