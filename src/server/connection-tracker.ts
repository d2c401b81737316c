import type { Socket } from "node:net";
import type { FastifyInstance } from "fastify";

/**
 * Closes connections that carry no request when the server closes. HTTP clients open spare keep-alive
 * connections ahead of need (undici does); Node's `server.close()` leaves a connection that has not sent a
 * request yet open until its headers timeout, so a shutdown would otherwise hang for a minute.
 */
export function closeUnusedConnectionsOnClose(app: FastifyInstance): void {
  const sockets = new Set<Socket>();
  const busy = new Map<Socket, number>();
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
    if (count <= 0) busy.delete(socket);
    else busy.set(socket, count);
  });
  // preClose: Fastify's onClose hooks run only after the server has closed, which these connections prevent.
  app.addHook("preClose", async () => {
    for (const socket of sockets) {
      if (!busy.has(socket)) socket.destroy();
    }
  });
}
