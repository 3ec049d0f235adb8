// ws-client.mjs URL N [TOPIC]: reads N messages from URL (a /ws/{id})
// with the npm ws package and prints each as a JSON line {cursor, data};
// on a cut it reconnects with ?cursor= the last cursor, as a WebSocket
// client of the gateway should. With TOPIC it publishes "hello from ws"
// into TOPIC once the socket opens and prints the gateway's reply as
// {reply}. Exits 0 after N messages, 1 on a fatal error or after 30 s.
import WebSocket from 'ws';

const [base, n, topic] = [process.argv[2], Number(process.argv[3] || 1), process.argv[4]];
let got = 0;
let cursor = '';
let published = false;
const timer = setTimeout(() => { console.error(`ws-client: ${got} of ${n} messages in 30 s`); process.exit(1); }, 30000);

function connect() {
  const url = new URL(base);
  if (cursor) url.searchParams.set('cursor', cursor);
  const ws = new WebSocket(url, 'comet.v1');
  ws.on('open', () => {
    console.error('ws-client: open ' + url);
    if (topic && !published) {
      published = true;
      ws.send(JSON.stringify({ op: 'publish', topic, data: 'hello from ws', ref: 1 }));
    }
  });
  ws.on('message', (data, isBinary) => {
    const text = data.toString();
    if (!isBinary && text.startsWith('{')) {
      const m = JSON.parse(text);
      if (m.type === 'reply' || m.type === 'error') console.log(JSON.stringify({ reply: m }));
      return;
    }
    const nl = text.indexOf('\n');
    cursor = text.slice(0, nl) || cursor;
    console.log(JSON.stringify({ cursor: text.slice(0, nl), data: text.slice(nl + 1) }));
    if (++got >= n) { clearTimeout(timer); ws.close(1000); process.exit(0); }
  });
  ws.on('close', (code) => {
    console.error(`ws-client: closed ${code}, reconnecting`);
    setTimeout(connect, 500);
  });
  ws.on('error', (e) => console.error('ws-client: ' + e.message));
}
connect();
