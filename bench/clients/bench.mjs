// bench.mjs: what the JavaScript client library (clients/js) costs, and
// how its clients come back from a gateway restart (make bench-clients).
//
//   overhead:  N clients of the library (WebSocket) on one gateway, then N
//              bare `ws` clients (the npm package, a cursor kept by hand),
//              each while msggen sends RATE numbered, stamped messages/s
//              to random ids for SECONDS: messages/s received, the
//              clients' CPU (and the gateway's), latency, and every
//              message once and in order (none lost, none twice).
//   reconnect: N library clients while msggen sends RATE/s; the gateway
//              is stopped (SIGTERM) with a second process already on the
//              port (SO_REUSEPORT): with its drain (the default 30 s) and
//              without (-drain-period 0, all at once). Reconnects per
//              second, time until all are back, and none lost.
//
// Everything on loopback; the clients run in WORKERS Node processes. Flags:
// --n 10000 --rate 1000 --seconds 60 --workers 2 --phases overhead,reconnect
// --out DIR (where the logs and summary.json go). COMET_BIN: the binaries.
import { spawn, fork } from "node:child_process";
import { createServer } from "node:net";
import { readFileSync, mkdirSync, writeFileSync, openSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((a, v, i, all) => (v.startsWith("--") ? [...a, [v.slice(2), all[i + 1]]] : a), []),
);

// ---- the clients, in a worker process ----

function worker() {
  const require = createRequire(new URL("../../clients/js/package.json", import.meta.url));
  const WebSocket = require("ws");
  let Comet;
  const [url, mode, from, to, rate] = [process.env.URL, process.env.MODE, Number(process.env.FROM), Number(process.env.TO), Number(process.env.RAMP)];
  const st = { open: 0, received: 0, gaps: 0, dups: 0, missed: 0, reopens: {}, lat: new Array(2001).fill(0), errors: 0 };
  const clients = [];
  // One message: its seq must follow the id's last one, its stamp gives
  // the latency (in ms buckets, the last one for 2 s and more).
  const got = (c, data) => {
    st.received++;
    const s = / seq=(\d+)/.exec(data);
    const t = / t=(\d+)/.exec(data);
    if (s) {
      const n = Number(s[1]);
      if (n <= c.seq) st.dups++;
      else if (n !== c.seq + 1) st.gaps += n - c.seq - 1;
      c.seq = Math.max(c.seq, n);
    }
    if (t) st.lat[Math.min(2000, Math.max(0, Math.round((Date.now() * 1e6 - Number(t[1])) / 1e6)))]++;
  };
  const opened = (c) => {
    if (c.wasOpen) {
      const sec = Math.floor(Date.now() / 1000);
      st.reopens[sec] = (st.reopens[sec] || 0) + 1;
    }
    c.wasOpen = true;
    st.open++;
  };
  const lib = (id) => {
    const c = { seq: 0 };
    c.comet = new Comet(url, { id, WebSocket, transports: ["websocket"] });
    c.comet.on("message", (m) => got(c, m.data));
    c.comet.on("missed", () => st.missed++);
    c.comet.on("error", () => st.errors++);
    c.comet.on("state", (s) => {
      if (s.state === "open") opened(c);
      else if (c.wasOpen && s.state === "reconnecting" && !c.down) { c.down = true; st.open--; }
      if (s.state === "open") c.down = false;
    });
    c.comet.connect();
    c.close = () => c.comet.close();
    return c;
  };
  // The bare client: what a page would write by hand with the ws package.
  const bare = (id) => {
    const c = { seq: 0, cursor: "" };
    const dial = () => {
      const ws = new WebSocket(`${url.replace("http", "ws")}/ws/${id}${c.cursor ? "?cursor=" + c.cursor : ""}`, "comet.v1");
      c.ws = ws;
      ws.on("open", () => opened(c));
      ws.on("message", (d, bin) => {
        const text = d.toString();
        if (!bin && text[0] === "{") {
          if (text.includes('"missed":true')) st.missed++;
          return;
        }
        const nl = text.indexOf("\n");
        c.cursor = text.slice(0, nl) || c.cursor;
        got(c, text.slice(nl + 1));
      });
      ws.on("error", () => st.errors++);
      ws.on("close", () => {
        if (c.closed) return;
        st.open--;
        setTimeout(dial, 500 + Math.random() * 500);
      });
    };
    dial();
    c.close = () => { c.closed = true; c.ws.close(); };
    return c;
  };
  process.on("message", async (m) => {
    if (m === "report") {
      const cpu = process.cpuUsage();
      process.send({ ...st, cpu: (cpu.user + cpu.system) / 1e6, rss: process.memoryUsage().rss });
    } else if (m === "stop") {
      clients.forEach((c) => c.close());
      setTimeout(() => process.exit(0), 200);
    }
  });
  (async () => {
    if (mode === "lib") ({ Comet } = await import("../../clients/js/comet.js"));
    const every = 1000 / rate;
    const start = Date.now();
    for (let id = from, i = 0; id <= to; id++, i++) {
      clients.push(mode === "lib" ? lib(id) : bare(id));
      const ahead = start + (i + 1) * every - Date.now();
      if (ahead > 0) await new Promise((r) => setTimeout(r, ahead));
    }
  })();
}

// ---- the orchestra ----

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const bin = process.env.COMET_BIN;
const N = Number(args.n || 10000);
const RATE = Number(args.rate || 1000);
const SECONDS = Number(args.seconds || 60);
const WORKERS = Number(args.workers || 2);
const OUT = args.out || ".";

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function run(name, argv, log) {
  const fd = openSync(join(OUT, log), "a");
  const p = spawn(join(bin, name), argv, { stdio: ["ignore", fd, fd] });
  p.exited = new Promise((r) => p.on("exit", (code) => r(code)));
  return p;
}

async function stats(admin) {
  return (await fetch(`http://${admin}/stats`)).json();
}

async function until(what, cond, ms) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`bench: timed out after ${ms / 1000} s waiting for ${what}`);
    await sleep(100);
  }
}

// cpuOf is a process's user+system CPU seconds so far (/proc).
function cpuOf(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function system(tag, gwArgs = []) {
  const s = { nats: `127.0.0.1:${await freePort()}`, admin: `127.0.0.1:${await freePort()}`, addr: `127.0.0.1:${await freePort()}` };
  s.router = run("router", ["-nats-addr", s.nats, "-admin", s.admin, "-log-level", "warn"], `${tag}-router.log`);
  await until("the router", async () => { try { await stats(s.admin); return true; } catch { return false; } }, 30000);
  s.gateway = (extra = []) => run("gateway", ["-addr", s.addr, "-admin", "off", "-nats", "nats://" + s.nats, "-log-level", "warn", ...gwArgs, ...extra], `${tag}-gateway.log`);
  s.gw = s.gateway();
  await until("the gateway", async () => (await stats(s.admin)).gateways === 1, 30000);
  s.stop = async () => {
    for (const p of [s.gw, s.gw2, s.router]) if (p && p.exitCode === null) { p.kill("SIGTERM"); await Promise.race([p.exited, sleep(40000)]); }
  };
  return s;
}

function clients(url, mode) {
  const per = Math.ceil(N / WORKERS);
  const ws = [];
  for (let w = 0; w < WORKERS; w++) {
    const from = w * per + 1;
    const to = Math.min(N, (w + 1) * per);
    ws.push(fork(new URL(import.meta.url).pathname, [], {
      env: { ...process.env, BENCH_WORKER: "1", URL: url, MODE: mode, FROM: String(from), TO: String(to), RAMP: String(2000 / WORKERS) },
    }));
  }
  const report = async () => {
    const rs = await Promise.all(ws.map((w) => new Promise((r) => { w.once("message", r); w.send("report"); })));
    const sum = { open: 0, received: 0, gaps: 0, dups: 0, missed: 0, errors: 0, cpu: 0, rss: 0, reopens: {}, lat: new Array(2001).fill(0) };
    for (const r of rs) {
      for (const k of ["open", "received", "gaps", "dups", "missed", "errors", "cpu", "rss"]) sum[k] += r[k];
      for (const [s, n] of Object.entries(r.reopens)) sum.reopens[s] = (sum.reopens[s] || 0) + n;
      r.lat.forEach((n, i) => { sum.lat[i] += n; });
    }
    return sum;
  };
  const stop = async () => {
    ws.forEach((w) => w.send("stop"));
    await Promise.all(ws.map((w) => new Promise((r) => w.on("exit", r))));
  };
  return { report, stop };
}

// arrived waits until the clients have received want messages in all,
// or for 10 s more (what is missing then counts as lost), and reports.
async function arrived(c, want) {
  const end = Date.now() + 10000;
  for (;;) {
    const r = await c.report();
    if (r.received >= want || Date.now() > end) return r;
    await sleep(200);
  }
}

function pct(lat, p) {
  const total = lat.reduce((a, b) => a + b, 0);
  let seen = 0;
  for (let i = 0; i < lat.length; i++) {
    seen += lat[i];
    if (seen >= total * p) return i;
  }
  return lat.length - 1;
}

function msggen(s, tag, seconds) {
  const summary = join(OUT, `${tag}-msggen.json`);
  const p = run("msggen", ["-nats", "nats://" + s.nats, "-rate", String(RATE), "-n", String(Math.round((RATE * seconds) / 4)), "-procs", "4",
    "-max", String(N), "-numbered", "-stamp", "-every", "0", "-summary", summary], `${tag}-msggen.log`);
  p.summary = summary;
  return p;
}

async function overhead(mode) {
  const tag = `overhead-${mode}`;
  const s = await system(tag);
  const c = clients(`http://${s.addr}`, mode);
  const t0 = Date.now();
  await until(`${N} clients held`, async () => (await stats(s.admin)).conns === N, 120000);
  const ramp = (Date.now() - t0) / 1000;
  const before = await c.report();
  const gw0 = cpuOf(s.gw.pid);
  const start = Date.now();
  const m = msggen(s, tag, SECONDS);
  await m.exited;
  const took = (Date.now() - start) / 1000;
  const sent = JSON.parse(readFileSync(m.summary, "utf8"));
  const after = await arrived(c, before.received + sent.sent);
  const gw1 = cpuOf(s.gw.pid);
  await c.stop();
  await s.stop();
  const received = after.received - before.received;
  const row = {
    mode, clients: N, ramp_s: ramp, sent: sent.sent, delivered: sent.delivered, received,
    lost: sent.sent - received, gaps: after.gaps, dups: after.dups, missed: after.missed,
    msgs_per_s: Math.round(received / took), client_cpu_s: +(after.cpu - before.cpu).toFixed(2), gateway_cpu_s: +(gw1 - gw0).toFixed(2),
    client_rss_mb: Math.round(after.rss / 2 ** 20), p50_ms: pct(after.lat, 0.5), p99_ms: pct(after.lat, 0.99), p999_ms: pct(after.lat, 0.999), seconds: took,
    late: after.lat.map((n, ms) => [ms, n]).filter(([ms, n]) => ms >= 50 && n > 0),
  };
  console.log(`overhead ${mode}: ${JSON.stringify(row)}`);
  return row;
}

async function reconnect(drain) {
  const tag = `reconnect-${drain ? "drain" : "nodrain"}`;
  // Without the drain, the gateways end their sessions all at once.
  const s = await system(tag, ["-reuseport", ...(drain ? [] : ["-drain-period", "0"])]);
  const c = clients(`http://${s.addr}`, "lib");
  await until(`${N} clients held`, async () => (await stats(s.admin)).conns === N, 120000);
  const m = msggen(s, tag, 20 + (drain ? 30 : 0) + 20);
  await sleep(10000);
  s.gw2 = s.gateway();
  await until("the second gateway", async () => (await stats(s.admin)).gateways === 2, 30000);
  const old = s.gw;
  const t0 = Date.now();
  const sec0 = Math.floor(t0 / 1000);
  old.kill("SIGTERM");
  await until("every client back", async () => {
    const r = await c.report();
    return old.exitCode !== null && r.open === N && (await stats(s.admin)).conns === N;
  }, 180000);
  const back = (Date.now() - t0) / 1000;
  await m.exited;
  const sent = JSON.parse(readFileSync(m.summary, "utf8"));
  const r = await arrived(c, sent.sent);
  await c.stop();
  await s.stop();
  const perSecond = Object.entries(r.reopens).map(([sec, n]) => [Number(sec) - sec0, n]).sort((a, b) => a[0] - b[0]);
  const row = {
    drain, clients: N, all_back_s: +back.toFixed(1), reopened: perSecond.reduce((a, [, n]) => a + n, 0),
    peak_per_s: Math.max(...perSecond.map(([, n]) => n)), per_second: perSecond,
    sent: sent.sent, received: r.received, lost: sent.sent - r.received, gaps: r.gaps, dups: r.dups, missed: r.missed,
  };
  console.log(`reconnect ${drain ? "with the drain" : "without"}: ${JSON.stringify(row)}`);
  return row;
}

async function main() {
  if (!bin) throw new Error("COMET_BIN is not set (make bench-clients sets it)");
  mkdirSync(OUT, { recursive: true });
  const phases = (args.phases || "overhead,reconnect").split(",");
  const out = { n: N, rate: RATE, seconds: SECONDS, workers: WORKERS, overhead: [], reconnect: [] };
  if (phases.includes("overhead")) for (const mode of ["lib", "ws"]) out.overhead.push(await overhead(mode));
  if (phases.includes("reconnect")) {
    out.reconnect.push(await reconnect(true));
    out.reconnect.push(await reconnect(false));
  }
  writeFileSync(join(OUT, "summary.json"), JSON.stringify(out, null, 2));
  let bad = false;
  for (const r of [...out.overhead, ...out.reconnect]) if (r.lost !== 0 || r.gaps || r.dups || r.missed) bad = true;
  if (bad) { console.error("bench-clients: messages lost, repeated or missed (summary.json)"); process.exit(1); }
}

if (process.env.BENCH_WORKER) worker();
else main().catch((e) => { console.error(e); process.exit(1); });
