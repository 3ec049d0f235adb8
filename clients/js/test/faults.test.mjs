// Faults: a gateway drained (1012 honoured) or killed with kill -9 under
// numbered messages (each once, in order), and proxies that block
// WebSockets or buffer event streams (the client falls back).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Comet, CometError } from "../comet.js";
import { System, collect, waitFor, sleep, secret, proxy } from "../testing/system.mjs";
import { client, opened, datas, kinds } from "../testing/helpers.mjs";

test("websocket: a drain's 1012 close is honoured, and the client comes back to the next gateway", async (t) => {
  const s = await System.start(t, { gwArgs: ["-reuseport", "-drain-period", "1s"] });
  const c = client(s, t, { id: 31 });
  const got = collect(c);
  c.connect();
  await opened(c, s, 1);
  const next = await s.gateway();
  s.gw.kill("SIGTERM");
  await s.gw.exited;
  await waitFor("back on the other gateway", () => c.state === "open" && got.states.some((x) => x.state === "reconnecting"));
  const r = got.states.find((x) => x.state === "reconnecting");
  assert.ok(r.delay >= 100 && r.delay < 1000, `the hint's delay: ${r.delay}`);
  await waitFor("logged in again", async () => (await s.conns()) === 1);
  await s.send(31, "after the drain");
  await waitFor("the message", () => got.messages.length === 1);
  next.kill("SIGTERM");
});

for (const kind of kinds) {
  test(`${kind}: 300 numbered messages across a gateway kill -9, each once, in order`, async (t) => {
    const s = await System.start(t);
    const c = client(s, t, { id: 41, transports: [kind] });
    const got = collect(c);
    c.connect();
    await opened(c, s, 1);
    const sending = (async () => {
      for (let i = 1; i <= 300; i++) {
        for (;;) {
          try { await s.send(41, `#${i}`); break; } catch { await sleep(50); }
        }
        await sleep(10);
      }
    })();
    await waitFor("some delivered", () => got.messages.length >= 50);
    s.gw.kill("SIGKILL");
    await s.gw.exited;
    await sleep(1000);
    s.gw = await s.gateway();
    await sending;
    await waitFor("all 300", () => got.messages.length >= 300, 30000);
    await sleep(300);
    assert.deepEqual(datas(got), Array.from({ length: 300 }, (_, i) => `#${i + 1}`));
    assert.deepEqual(got.missed, []);
  });
}

test("a proxy that refuses WebSockets: SSE, remembered for the next reconnect", async (t) => {
  const s = await System.start(t, { gwArgs: ["-reuseport"] });
  const p = await proxy(t, s.addr, { blockWS: true });
  const c = new Comet(p.url, { WebSocket: (await import("ws")).default, id: 51, minDelay: 100, maxDelay: 1000, connectTimeout: 3000 });
  t.after(() => c.close());
  const got = collect(c);
  c.connect();
  await opened(c, s, 1);
  assert.equal(c.transport, "sse");
  assert.equal(p.seen.upgrades, 1);
  await s.send(51, "through the proxy");
  await waitFor("the message", () => got.messages.length === 1);
  // The gateway goes away and comes back: the client does not try the
  // WebSocket again (remembered), and loses nothing.
  s.gw.kill("SIGKILL");
  await s.gw.exited;
  await s.send(51, "while away");
  s.gw = await s.gateway();
  await waitFor("the kept message", () => got.messages.length === 2);
  assert.deepEqual(datas(got), ["through the proxy", "while away"]);
  assert.equal(p.seen.upgrades, 1, "the WebSocket was tried again");
  assert.ok(got.errors.length === 0 || got.errors.every((e) => e.code === "transport"), String(got.errors));
});

test("a proxy that refuses WebSockets and buffers event streams: long-poll", async (t) => {
  const s = await System.start(t);
  const p = await proxy(t, s.addr, { blockWS: true, bufferSSE: true });
  const c = new Comet(p.url, { WebSocket: (await import("ws")).default, id: 52, minDelay: 100, maxDelay: 1000, connectTimeout: 1000 });
  t.after(() => c.close());
  const got = collect(c);
  c.connect();
  await opened(c, s, 1);
  assert.equal(c.transport, "longpoll");
  assert.ok(p.seen.upgrades === 1 && p.seen.sse === 1, JSON.stringify(p.seen));
  for (let i = 1; i <= 20; i++) await s.send(52, `lp ${i}`);
  await waitFor("20 messages", () => got.messages.length === 20);
  assert.deepEqual(datas(got), Array.from({ length: 20 }, (_, i) => `lp ${i + 1}`));
});

test("the gateway down: the client waits with growing, jittered delays and falls back to nothing", async (t) => {
  const s = await System.start(t);
  s.gw.kill("SIGKILL");
  await s.gw.exited;
  const c = new Comet(s.url, { WebSocket: (await import("ws")).default, id: 53, minDelay: 100, maxDelay: 800, connectTimeout: 1000 });
  t.after(() => c.close());
  const got = collect(c);
  c.connect();
  await waitFor("five reconnect delays", () => got.states.filter((x) => x.state === "reconnecting" && x.delay > 0).length >= 5, 20000);
  const delays = got.states.filter((x) => x.state === "reconnecting" && x.delay > 0).map((x) => x.delay);
  assert.ok(delays[0] < 200 && delays[4] >= 400 && delays.every((d) => d <= 800), `delays ${delays}`);
  // Every transport failed alike: none is remembered as blocked.
  s.gw = await s.gateway();
  await opened(c, s, 1);
  assert.equal(c.transport, "websocket");
});
