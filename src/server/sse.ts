import { PassThrough } from "node:stream";
import type { FastifyReply, FastifyRequest } from "fastify";

/**
 * A server-sent events response in OpenAI's framing: `data: <json>\n\n` per chunk and `data: [DONE]` last.
 * Writes after the client has gone are dropped; `send` waits while the socket's buffer is full.
 */
export class EventStream {
  private readonly stream = new PassThrough();
  private readonly deadline: AbortSignal | null;

  /**
   * Once `deadline` has aborted, a write that would wait for the client to read cuts the connection instead: a
   * client that left kilobytes unread until the request timed out is not reading, and would otherwise hold this
   * handler (and a shutdown) forever.
   */
  constructor(reply: FastifyReply, deadline: AbortSignal | null = null) {
    this.deadline = deadline;
    void reply
      .header("content-type", "text/event-stream; charset=utf-8")
      .header("cache-control", "no-cache")
      .header("x-accel-buffering", "no")
      .send(this.stream);
  }

  get isClosed(): boolean {
    return this.stream.destroyed || this.stream.writableEnded;
  }

  async send(data: unknown): Promise<void> {
    await this.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** Ends the stream with OpenAI's terminator. */
  async done(): Promise<void> {
    await this.write("data: [DONE]\n\n");
    if (!this.isClosed) this.stream.end();
  }

  private async write(text: string): Promise<void> {
    if (this.isClosed) return;
    if (this.stream.write(text)) return;
    const deadline = this.deadline;
    if (deadline?.aborted === true) {
      this.stream.destroy();
      return;
    }
    await new Promise<void>((resolve) => {
      const expire = (): void => {
        this.stream.destroy();
        finish();
      };
      const finish = (): void => {
        this.stream.off("drain", finish);
        this.stream.off("close", finish);
        deadline?.removeEventListener("abort", expire);
        resolve();
      };
      this.stream.on("drain", finish);
      this.stream.on("close", finish);
      deadline?.addEventListener("abort", expire, { once: true });
    });
  }
}

/** Calls `onGone` when the client closes the connection before the response was fully sent. */
export function onClientGone(request: FastifyRequest, reply: FastifyReply, onGone: () => void): void {
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) onGone();
  });
  // The socket may have closed before this listener existed (while the body was parsed or validated).
  if (request.raw.socket?.destroyed === true || reply.raw.destroyed) onGone();
}
