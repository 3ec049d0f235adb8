// Each transport against a real router and gateway ($COMET_BIN): messages
// once and in order, resumed from the cursor, missed when gone; join and
// leave by reconnecting on SSE and long-poll; binary messages.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Comet, CometError } from "../comet.js";
import { System, collect, waitFor, sleep, secret, proxy } from "../testing/system.mjs";
import { client, opened, datas, kinds } from "../testing/helpers.mjs";

for (const kind of kinds) {
  test(`${kind}: messages once and in order, resumed by a new client from the cursor`, async (t) => {
    const s = await System.start(t);
    const c = client(s, t, { id: 7, transports: [kind] });
    const got = collect(c);
    c.connect();
    await opened(c, s, 1);
    assert.equal(c.transport, kind);
    for (let i = 1; i <= 5; i++) await s.send(7, `m${i}\nline two`);
    await waitFor("5 messages", () => got.messages.length === 5);
    assert.deepEqual(datas(got), [1, 2, 3, 4, 5].map((i) => `m${i}\nline two`));
    assert.match(c.cursor, /^[0-9a-f]+-5$/);
    const cursor = c.cursor;
    c.close();
    assert.equal(c.state, "closed");
    await waitFor("the client gone", async () => (await s.conns()) === 0);

    // Sent while nobody listened: kept, and given to the next client that
    // comes with the cursor, each once, with nothing missed.
    for (let i = 6; i <= 8; i++) await s.send(7, `m${i}`);
    const c2 = client(s, t, { id: 7, transports: [kind], cursor });
    const got2 = collect(c2);
    c2.connect();
    await waitFor("3 kept messages", () => got2.messages.length === 3);
    await sleep(200); // a duplicate would come now
    assert.deepEqual(datas(got2), ["m6", "m7", "m8"]);
    assert.deepEqual(got2.missed, []);
    assert.match(c2.cursor, /-8$/);
  });

  test(`${kind}: missed is an event when the gateway no longer has what the cursor asks`, async (t) => {
    const s = await System.start(t, { routerArgs: ["-retain-messages", "3"] });
    const c = client(s, t, { id: 9, transports: [kind] });
    const got = collect(c);
    c.connect();
    await opened(c, s, 1);
    await s.send(9, "first");
    await waitFor("the first message", () => got.messages.length === 1);
    const cursor = c.cursor;
    c.close();
    await waitFor("the client gone", async () => (await s.conns()) === 0);
    for (let i = 1; i <= 6; i++) await s.send(9, `away ${i}`);
    const c2 = client(s, t, { id: 9, transports: [kind], cursor });
    const got2 = collect(c2);
    c2.connect();
    await waitFor("the 3 kept", () => got2.messages.length === 3);
    assert.equal(got2.missed.length, 1, "one missed event");
    assert.equal(got2.missed[0].after, cursor);
    assert.deepEqual(datas(got2), ["away 4", "away 5", "away 6"]);
  });
}

for (const kind of ["sse", "longpoll"]) {
  test(`${kind}: join and leave reconnect with the topics and the cursor, losing nothing`, async (t) => {
    const s = await System.start(t);
    const c = client(s, t, { id: 5, transports: [kind] });
    const got = collect(c);
    c.connect();
    await opened(c, s, 1);
    await s.send(5, "before");
    await waitFor("before", () => got.messages.length === 1);
    await c.join(["room"]);
    await waitFor("in the room", async () => ((await (await fetch(`http://${s.admin}/topics/room`)).json()).conns || 0) === 1);
    await s.publish("room", "in the room");
    await s.send(5, "to me");
    await waitFor("3 messages", () => got.messages.length === 3);
    assert.deepEqual(datas(got), ["before", "in the room", "to me"]);
  });
}

test("binary messages come as bytes on a WebSocket", async (t) => {
  const s = await System.start(t);
  const c = client(s, t, { id: 11 });
  const got = collect(c);
  c.connect();
  await opened(c, s, 1);
  const res = await fetch(`http://${s.admin}/send/11`, { method: "POST", body: new Uint8Array([0xff, 0x00, 0x0a, 0x41]) });
  assert.equal(res.status, 200);
  await waitFor("the message", () => got.messages.length === 1);
  assert.deepEqual(datas(got), ["bytes:255,0,10,65"]);
});

test("bad options are errors at once", () => {
  assert.throws(() => new Comet("http://x", {}), /id must be an integer/);
  assert.throws(() => new Comet("ftp://x", { id: 1 }), /must start with http/);
  assert.throws(() => new Comet("http://x", { id: 1, transports: ["carrier-pigeon"] }), /unknown transport/);
});

for (const kind of kinds) {
  test(`${kind}: rewind gives the topic's last messages first, then the live ones`, async (t) => {
    const s = await System.start(t, { routerArgs: ["-topic-history", "5"] });
    for (let i = 1; i <= 7; i++) await s.publish("room", `said ${i}`);
    const c = client(s, t, { id: 11, transports: [kind], topics: ["room"], rewind: 3 });
    const got = collect(c);
    c.connect();
    await waitFor("3 kept messages", () => got.messages.length === 3);
    await opened(c, s, 1);
    await waitFor("in the room", async () => (await s.presence("room")) === 1);
    await s.publish("room", "live");
    await waitFor("the live one", () => got.messages.length === 4);
    await sleep(200); // a repeat would come now
    assert.deepEqual(datas(got), ["said 5", "said 6", "said 7", "live"]);
    assert.equal(got.messages[0].cursor || "", "");
  });
}
