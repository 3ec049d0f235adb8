// The real system for the library's tests: the router (with its embedded
// NATS) and gateways started from $COMET_BIN (make build's bin/), on free
// loopback ports, stopped when the test ends.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { createHmac } from "node:crypto";
import { writeFileSync, mkdtempSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const bin = process.env.COMET_BIN;

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// waitFor polls cond until it is true, or fails after ms.
export async function waitFor(what, cond, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

// proc runs one of the binaries; its output is kept for a failure's report.
export function proc(t, name, args) {
  if (!bin) throw new Error("COMET_BIN is not set: run `make build`, then COMET_BIN=$PWD/bin npm test");
  const p = spawn(join(bin, name), args, { stdio: ["ignore", "pipe", "pipe"] });
  p.log = "";
  const keep = (b) => { p.log = (p.log + b).slice(-20000); };
  p.stdout.on("data", keep);
  p.stderr.on("data", keep);
  p.exited = new Promise((r) => p.on("exit", (code, sig) => r(code ?? sig)));
  // Stopped as an operator would (SIGTERM: the router removes its
  // temporary store), killed if it takes over 5 s.
  t.after(async () => {
    if (p.exitCode !== null || p.signalCode !== null) return;
    p.kill("SIGTERM");
    const t5 = setTimeout(() => p.kill("SIGKILL"), 5000);
    await p.exited;
    clearTimeout(t5);
  });
  return p;
}

export async function stats(admin) {
  const res = await fetch(`http://${admin}/stats`);
  return res.json();
}

// System is a router and one gateway; gateway() starts another (or the
// same again) on the same address.
export class System {
  static async start(t, { routerArgs = [], gwArgs = [] } = {}) {
    const s = new System();
    s.t = t;
    s.nats = `127.0.0.1:${await freePort()}`;
    s.admin = `127.0.0.1:${await freePort()}`;
    s.addr = `127.0.0.1:${await freePort()}`;
    s.url = `http://${s.addr}`;
    s.gwArgs = gwArgs;
    s.router = proc(t, "router", ["-nats-addr", s.nats, "-admin", s.admin, ...routerArgs]);
    await waitFor("the router's admin API", async () => {
      try { await stats(s.admin); return true; } catch { return false; }
    });
    s.gw = await s.gateway();
    return s;
  }

  // gateway starts a gateway on the system's address and waits until
  // the router counts it (with the others already there).
  async gateway(extra = []) {
    const before = (await stats(this.admin)).gateways || 0;
    const g = proc(this.t, "gateway", ["-addr", this.addr, "-admin", "off", "-nats", "nats://" + this.nats, ...this.gwArgs, ...extra]);
    await waitFor("the gateway registered", async () => (await stats(this.admin)).gateways > before || g.exitCode !== null);
    if (g.exitCode !== null) throw new Error("gateway exited:\n" + g.log);
    return g;
  }

  async conns() { return (await stats(this.admin)).conns; }

  // presence is how many conns are in topic (GET /topics/{topic}).
  async presence(topic) {
    const res = await fetch(`http://${this.admin}/topics/${topic}`);
    return (await res.json()).conns;
  }

  // send posts msg to id through the router's HTTP API and returns its ack.
  async send(id, msg) {
    const res = await fetch(`http://${this.admin}/send/${id}`, { method: "POST", body: msg });
    if (!res.ok) throw new Error(`send ${id}: ${res.status} ${await res.text()}`);
    return res.json();
  }

  async publish(topic, msg) {
    const res = await fetch(`http://${this.admin}/publish/${topic}`, { method: "POST", body: msg });
    if (!res.ok) throw new Error(`publish ${topic}: ${res.status} ${await res.text()}`);
    return res.json();
  }
}

// secretFile writes an HS256 secret the gateway reads with
// -auth-secret-file, and returns its path and a signer of tokens.
export function secret() {
  const dir = mkdtempSync(join(tmpdir(), "comet-js-"));
  const key = "library tests' secret, 32 bytes or more!";
  const path = join(dir, "secret");
  writeFileSync(path, key);
  chmodSync(path, 0o600);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const sign = (claims) => {
    const head = b64({ alg: "HS256", typ: "JWT" }) + "." + b64(claims);
    return head + "." + createHmac("sha256", key).update(head).digest("base64url");
  };
  return { path, sign };
}

// collect gathers a client's messages and events.
export function collect(c) {
  const got = { messages: [], missed: [], presence: [], states: [], errors: [] };
  c.on("message", (m) => got.messages.push(m));
  c.on("missed", (m) => got.missed.push(m));
  c.on("presence", (m) => got.presence.push(m));
  c.on("state", (s) => got.states.push(s));
  c.on("error", (e) => got.errors.push(e));
  return got;
}

// proxy forwards HTTP to the gateway at target ("127.0.0.1:port") the
// way a hostile network might: with blockWS it refuses WebSocket
// upgrades (403, as a proxy that does not know them), with bufferSSE it
// holds back every byte of an event stream until the stream ends (as a
// buffering proxy does), so the client must fall back. It returns the
// proxy's URL and counts what it saw.
import { createServer as createHTTPServer, request as httpRequest } from "node:http";
export async function proxy(t, target, { blockWS = false, bufferSSE = false } = {}) {
  const [host, port] = target.split(":");
  const seen = { upgrades: 0, sse: 0, poll: 0 };
  const srv = createHTTPServer((req, res) => {
    if (req.url.startsWith("/sse/")) seen.sse++;
    if (req.url.startsWith("/poll/")) seen.poll++;
    const up = httpRequest({ host, port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      if (bufferSSE && req.url.startsWith("/sse/")) {
        const parts = [];
        ur.on("data", (b) => parts.push(b));
        ur.on("end", () => { res.writeHead(ur.statusCode, ur.headers); res.end(Buffer.concat(parts)); });
        return;
      }
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
      // The gateway gone mid-stream: so is the client's connection.
      ur.on("close", () => { if (!ur.complete) res.destroy(); });
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
    res.on("close", () => up.destroy());
  });
  srv.on("upgrade", (req, sock) => {
    seen.upgrades++;
    if (blockWS) {
      sock.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      return;
    }
    sock.destroy();
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  t.after(() => { srv.closeAllConnections(); srv.close(); });
  return { url: `http://127.0.0.1:${srv.address().port}`, seen };
}
