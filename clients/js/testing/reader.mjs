// reader.mjs URL ID N [TRANSPORT...]: the e2e tests' client made of the
// library: one Comet client of ID per transport (default websocket),
// each reading N messages from the gateway at URL, printed as JSON lines
// {"transport", "cursor", "data"} ({"transport", "missed"} for a missed
// event). Exits 0 once every client has N, 1 after READER_TIMEOUT_MS
// (60 s). With READER_IDLE_EXIT_MS, also 0 once that long passed with
// nothing new after the first message (for runs where some messages may
// never come: the caller holds them to what the sender was told). With
// READER_SECRET_FILE, getToken mints HS256 tokens of that secret lasting
// READER_TOKEN_SECONDS (3), so the clients renew them as they read.
// Each client's states and errors go to stderr, with the seconds since
// the start; with READER_TRACE, every long-poll request and answer too.
import { readFileSync } from "node:fs";
import { createHmac } from "node:crypto";
import WebSocket from "ws";
import { Comet } from "../comet.js";

const [url, id, n, ...transports] = process.argv.slice(2);
const want = Number(n);
const env = process.env;
let getToken;
if (env.READER_SECRET_FILE) {
  const key = readFileSync(env.READER_SECRET_FILE, "utf8").trim();
  const life = Number(env.READER_TOKEN_SECONDS || 3);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  getToken = async () => {
    const head = b64({ alg: "HS256", typ: "JWT" }) + "." + b64({ sub: id, exp: Math.floor(Date.now() / 1000) + life });
    return head + "." + createHmac("sha256", key).update(head).digest("base64url");
  };
}
const start = Date.now();
const say = (what) => console.error(`reader ${((Date.now() - start) / 1000).toFixed(3)} s: ${what}`);
const clients = (transports.length ? transports : ["websocket"]).map((t) => {
  const trace = env.READER_TRACE && t === "longpoll" ? async (u, o) => {
    const q = new URL(u).searchParams;
    say(`poll cursor=${q.get("cursor")} timeout=${q.get("timeout")}`);
    const r = await fetch(u, o);
    const b = await r.clone().text();
    const j = r.ok ? JSON.parse(b) : {};
    say(`poll answer ${r.status} n=${j.messages?.length} cursor=${j.cursor} missed=${j.missed} ${r.ok ? "" : b}`);
    return r;
  } : undefined;
  const c = new Comet(url, { WebSocket, id, transports: [t], getToken, minDelay: 100, maxDelay: 2000, ...(trace ? { fetch: trace } : {}) });
  c.got = 0;
  c.on("message", (m) => {
    console.log(JSON.stringify({ transport: t, cursor: m.cursor, data: String(m.data) }));
    c.got++;
    progress();
  });
  c.on("missed", (m) => console.log(JSON.stringify({ transport: t, missed: m })));
  c.on("state", (s) => say(`${t}: ${s.state}${s.delay ? ` in ${Math.round(s.delay)} ms` : ""} (${c.got} so far)`));
  c.on("error", (e) => say(`${t}: ${e.code}: ${e.message}`));
  return c.connect();
});
const limit = Number(env.READER_TIMEOUT_MS || 60000);
const timer = setTimeout(() => {
  console.error(`reader: ${clients.map((c) => c.got).join(", ")} of ${want} in ${limit} ms`);
  process.exit(1);
}, limit);
const idle = Number(env.READER_IDLE_EXIT_MS || 0);
let idleTimer;
function done() {
  clearTimeout(timer);
  clients.forEach((c) => c.close());
  process.exit(0);
}
function progress() {
  if (idle > 0) {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(done, idle);
  }
  if (clients.every((c) => c.got >= want)) done();
}
