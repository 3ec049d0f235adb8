// sse-client.mjs URL N: reads N events from URL with the npm eventsource
// package (the WHATWG EventSource for Node) and prints each as a JSON
// line {id, data}; reconnects (with Last-Event-ID) as any EventSource
// does. Exits 0 after N events, 1 on a fatal error or after 30 s.
import { EventSource } from 'eventsource';

const [url, n] = [process.argv[2], Number(process.argv[3] || 1)];
const es = new EventSource(url);
let got = 0;
const timer = setTimeout(() => { console.error(`sse-client: ${got} of ${n} events in 30 s`); process.exit(1); }, 30000);
es.onopen = () => console.error('sse-client: open');
es.onerror = (e) => {
  console.error(`sse-client: error ${e.code ?? ''} ${e.message ?? ''}`);
  if (es.readyState === EventSource.CLOSED) process.exit(1);
};
es.onmessage = (e) => {
  console.log(JSON.stringify({ id: e.lastEventId, data: e.data }));
  if (++got >= n) { clearTimeout(timer); es.close(); process.exit(0); }
};
