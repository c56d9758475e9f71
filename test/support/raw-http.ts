/**
 * HTTP/1.1 by hand over a TCP socket to 127.0.0.1, for what fetch() will not
 * send: any Host header, an absolute-form request target.
 */
import { connect } from "node:net";

export interface RawResponse {
  status: number;
  headers: string;
  body: string;
}

export function rawRequest(port: number, target: string, host: string, headers: string[] = []): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.write(
        [`GET ${target} HTTP/1.1`, `Host: ${host}`, ...headers, "Connection: close", "", ""].join("\r\n"),
        "latin1",
      );
    });
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to GET ${target} (Host: ${host})`)));
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("latin1");
      const split = text.indexOf("\r\n\r\n");
      const head = split === -1 ? text : text.slice(0, split);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
      resolve({ status, headers: head, body: split === -1 ? "" : text.slice(split + 4) });
    });
  });
}
