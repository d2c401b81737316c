import type { Socket } from "node:net";
import type { FastifyInstance } from "fastify";

/**
 * Closes connections that carry no request when the server closes, and each busy one as soon as its last
 * response is complete. HTTP clients open spare keep-alive connections ahead of need (undici does); Node's
 * `server.close()` closes only the connections idle at that moment, and leaves one that has not sent a request
 * yet open until its headers timeout and one whose response finishes later open for the whole keep-alive
 * timeout, so a shutdown would otherwise hang for a minute after its last stream ended.
 */
export function closeUnusedConnectionsOnClose(app: FastifyInstance): void {
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
  app.addHook("onRequest", async (request) => {
    const socket = request.raw.socket;
    busy.set(socket, (busy.get(socket) ?? 0) + 1);
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
  // preClose: Fastify's onClose hooks run only after the server has closed, which these connections prevent.
  app.addHook("preClose", async () => {
    isClosing = true;
    for (const socket of sockets) {
      if (!busy.has(socket)) socket.destroy();
    }
  });
}
