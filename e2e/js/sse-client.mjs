// sse-client.mjs URL N: reads N events from URL with the npm eventsource
// package (the WHATWG EventSource for Node) and prints each as a JSON
// line {id, data}; reconnects (with Last-Event-ID) as any EventSource
// does. Exits 0 after N events, 1 on a fatal error or after 30 s
// (SSE_TIMEOUT_MS). With SSE_IDLE_EXIT_MS set, it also exits 0 once that
// long passed without an event after the first (for runs where some
// messages may never come: the caller holds them to what the sender was
// told).
import { EventSource } from 'eventsource';

const [url, n] = [process.argv[2], Number(process.argv[3] || 1)];
const es = new EventSource(url);
let got = 0;
const limit = Number(process.env.SSE_TIMEOUT_MS || 30000);
const timer = setTimeout(() => { console.error(`sse-client: ${got} of ${n} events in ${limit} ms`); process.exit(1); }, limit);
es.onopen = () => console.error('sse-client: open');
es.onerror = (e) => {
  console.error(`sse-client: error ${e.code ?? ''} ${e.message ?? ''}`);
  if (es.readyState === EventSource.CLOSED) process.exit(1);
};
const idle = Number(process.env.SSE_IDLE_EXIT_MS || 0);
let idleTimer;
es.onmessage = (e) => {
  console.log(JSON.stringify({ id: e.lastEventId, data: e.data }));
  if (idle > 0) {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => { clearTimeout(timer); es.close(); process.exit(0); }, idle);
  }
  if (++got >= n) { clearTimeout(timer); clearTimeout(idleTimer); es.close(); process.exit(0); }
};
