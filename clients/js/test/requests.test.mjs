// The WebSocket requests as promises, with the router's figures.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Comet, CometError } from "../comet.js";
import { System, collect, waitFor, sleep, secret, proxy } from "../testing/system.mjs";
import { client, opened, datas, kinds } from "../testing/helpers.mjs";

test("websocket: publish, send, join, leave and ping resolve with the router's figures", async (t) => {
  const s = await System.start(t, { gwArgs: ["-ws-send"] });
  const a = client(s, t, { id: 1, topics: ["lobby"], presence: true });
  const b = client(s, t, { id: 2, topics: ["lobby"] });
  const ga = collect(a);
  const gb = collect(b);
  a.connect();
  b.connect();
  await opened(a, s);
  await opened(b, s, 2);
  const r = await a.publish("lobby", "hello, room");
  assert.equal(r.op, "publish");
  assert.equal(r.delivered, 2);
  await waitFor("both got it", () => ga.messages.length === 1 && gb.messages.length === 1);
  assert.equal(gb.messages[0].data, "hello, room");

  // Not in the topic: the gateway's error, as a rejected promise.
  await assert.rejects(a.publish("news", "x"), (e) => e instanceof CometError && e.code === "gateway" && /not in topic news/.test(e.message));
  const j = await b.join("news");
  assert.equal(j.op, "join");
  assert.deepEqual(b.topics.sort(), ["lobby", "news"]);
  // The reply says the gateway sent the join on; the router applies it
  // in a moment (a publish from elsewhere can come first, to no one).
  await waitFor("the router has b in news", async () => (await s.publish("news", "for news")).delivered === 1);
  await waitFor("b got news", () => gb.messages.length === 2);
  assert.equal(gb.messages[1].data, "for news");
  const l = await b.leave(["news"]);
  assert.equal(l.op, "leave");
  assert.deepEqual(b.topics, ["lobby"]);
  await waitFor("the router has b out of news", async () => (await s.publish("news", "after leaving")).delivered === 0);

  const sent = await b.send(1, "direct to 1");
  assert.equal(sent.delivered, 1);
  await waitFor("a got the send", () => ga.messages.some((m) => m.data === "direct to 1"));
  assert.equal((await a.ping()).op, "ping");
  // a watches presence: b's join and leave of lobby came as events or at
  // least the first one, with b's id.
  await waitFor("a presence event", () => ga.presence.length > 0);
  assert.equal(ga.presence[0].presence, "lobby");

  // A request on a transport without requests is refused at once.
  const p = client(s, t, { id: 3, transports: ["sse"] });
  p.connect();
  await opened(p, s);
  await assert.rejects(p.publish("lobby", "x"), (e) => e.code === "transport");
  // Closing rejects what waits.
  const q = client(s, t, { id: 4 });
  await assert.rejects(q.ping(), (e) => e.code === "closed");
});
