// The library's parsers alone: the event stream (split anywhere), the
// drain's close hint, a token's expiry, a cursor.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SSEParser, reconnectHint, tokenExpiry, parseCursor } from "../comet.js";

const stream = "retry: 2000\r\n\r\nid: ab-0\n\n: heartbeat\n\nid: ab-1\ndata: one\r\ndata: two\r\rid: ab-2\ndata:\n\nevent: missed\nid: ab-9\ndata: {\"missed\":true}\n\nevent: presence\ndata: {\"presence\":\"lobby\"}\n\n";

test("the event stream, whole and split at every byte", () => {
  const want = [
    { id: "ab-0", event: "", data: undefined },
    { id: "ab-1", event: "", data: "one\ntwo" },
    { id: "ab-2", event: "", data: "" },
    { id: "ab-9", event: "missed", data: '{"missed":true}' },
    { id: undefined, event: "presence", data: '{"presence":"lobby"}' },
  ];
  for (let cut = 0; cut <= stream.length; cut++) {
    const got = [];
    const retries = [];
    const p = new SSEParser((ev) => got.push(ev), (ms) => retries.push(ms));
    p.push(stream.slice(0, cut));
    p.push(stream.slice(cut));
    assert.deepEqual(got, want, `split at ${cut}`);
    assert.deepEqual(retries, [2000]);
  }
});

test("the drain's hint", () => {
  assert.equal(reconnectHint(1012, "gateway restarting: reconnect in 437 ms"), 437);
  assert.equal(reconnectHint(1012, "service restart"), -1);
  assert.equal(reconnectHint(1001, "reconnect in 5 ms"), -1);
});

test("a token's expiry", () => {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  assert.equal(tokenExpiry(`${b64({ alg: "HS256" })}.${b64({ sub: "1", exp: 1700000000 })}.sig`), 1700000000000);
  // base64url with the characters base64 lacks, and no padding.
  assert.equal(tokenExpiry(`x.${b64({ n: "??>>", exp: 5 })}.s`), 5000);
  assert.equal(tokenExpiry("not a token"), 0);
  assert.equal(tokenExpiry(`x.${b64({ sub: "1" })}.s`), 0);
});

test("cursors", () => {
  assert.deepEqual(parseCursor("99bcc80700000001-12"), ["99bcc80700000001", 12]);
  assert.equal(parseCursor(""), null);
  assert.equal(parseCursor(undefined), null);
});
