// Tokens: renewed by getToken before they expire on every transport;
// a refusal without a way to renew is the end, with the reason.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Comet, CometError } from "../comet.js";
import { System, collect, waitFor, sleep, secret, proxy } from "../testing/system.mjs";
import { client, opened, datas, kinds } from "../testing/helpers.mjs";

for (const kind of kinds) {
  test(`${kind}: getToken renews short tokens and the stream goes on without a loss`, async (t) => {
    const key = secret();
    const s = await System.start(t, { gwArgs: ["-auth-secret-file", key.path, "-auth-leeway", "0s"] });
    let calls = 0;
    const c = client(s, t, {
      id: 21,
      transports: [kind],
      getToken: async () => {
        calls++;
        return key.sign({ sub: "21", exp: Math.floor(Date.now() / 1000) + 3 });
      },
    });
    const got = collect(c);
    c.connect();
    await opened(c, s, 1);
    // 8 s of messages across tokens of 3 s.
    for (let i = 1; i <= 40; i++) {
      await s.send(21, `n${i}`);
      await sleep(200);
    }
    await waitFor("40 messages", () => got.messages.length >= 40);
    await sleep(300);
    assert.deepEqual(datas(got), Array.from({ length: 40 }, (_, i) => `n${i + 1}`));
    assert.ok(calls >= 3, `getToken called ${calls} times`);
    assert.deepEqual(got.missed, []);
  });
}

test("without getToken, a refused token is the end: closed with the reason", async (t) => {
  const key = secret();
  const s = await System.start(t, { gwArgs: ["-auth-secret-file", key.path] });
  const c = client(s, t, { id: 22, transports: ["sse"], token: key.sign({ sub: "23", exp: Math.floor(Date.now() / 1000) + 60 }) });
  const got = collect(c);
  c.connect();
  await waitFor("closed", () => c.state === "closed");
  assert.match(got.errors[0].message, /403 token is for id 23, not 22/);
});
