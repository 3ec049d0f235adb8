// webhook-receiver.mjs PORT SECRET_FILE [DOWN_FILE]: a webhook receiver
// written only with Node's own http and crypto, as an application's
// backend would be. It checks each POST's X-Comet-Signature (an
// HMAC-SHA256 of the body under the secret, the file's first line) and
// prints every batch it takes as one JSON line {"attempt", "events",
// "lost"}. A bad signature is answered 403 and said on stderr; while
// DOWN_FILE exists every POST is answered 503 (a receiver that is down).
import { createServer } from 'node:http';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';

const [port, secretFile, downFile] = process.argv.slice(2);
const secret = readFileSync(secretFile, 'utf8').split('\n')[0].trim();

function signed(body, header) {
  const want = Buffer.from('sha256=' + createHmac('sha256', secret).update(body).digest('hex'));
  const got = Buffer.from(header || '');
  return got.length === want.length && timingSafeEqual(got, want);
}

createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    if (req.method !== 'POST' || !signed(body, req.headers['x-comet-signature'])) {
      console.error(`webhook-receiver: bad signature or method ${req.method}`);
      res.writeHead(403).end();
      return;
    }
    if (downFile && existsSync(downFile)) {
      res.writeHead(503).end();
      return;
    }
    const batch = JSON.parse(body);
    console.log(JSON.stringify({ attempt: Number(req.headers['x-comet-attempt']), events: batch.events, lost: batch.lost || 0 }));
    res.writeHead(204).end();
  });
}).listen(Number(port), '127.0.0.1', () => console.error(`webhook-receiver: listening on ${port}`));
