import { Comet } from "../comet.js";
import WebSocket from "ws";
import { waitFor } from "../testing/system.mjs";

export const fast = { WebSocket, minDelay: 100, maxDelay: 1000, connectTimeout: 3000 };
export const kinds = ["websocket", "sse", "longpoll"];

export function client(s, t, opts) {
  const c = new Comet(s.url, { ...fast, ...opts });
  t.after(() => c.close());
  return c;
}

export async function opened(c, s, conns) {
  await waitFor(`the client open (${c.transport})`, () => c.state === "open");
  // Open means the gateway answered; its login reaches the router a moment later.
  if (conns !== undefined) await waitFor(`${conns} conns at the router`, async () => (await s.conns()) >= conns);
}

export const datas = (got) => got.messages.map((m) => (typeof m.data === "string" ? m.data : `bytes:${[...m.data]}`));
