#!/usr/bin/env node
// An echo server on Node's `ws`, a peer nobody on wshub wrote, for testing
// wshub's client.
//
//     node tests/peers/ws_echo_server.js MODE
//
// MODE: `none` or `deflate` (permessage-deflate with ws' defaults, every
// message compressed: threshold 0). `ws` is found through NODE_PATH
// (scripts/test.sh installs it under ~/.cache/wshub/node).
//
// Prints {"port": N} once it listens, then one JSON line per connection
// when it ends: {"extensions": <negotiated, "" if none>, "echoed": n,
// "close_code": code}. Exits when its stdin closes.
'use strict';
const { WebSocketServer } = require('ws');

const mode = process.argv[2];
if (mode !== 'none' && mode !== 'deflate') {
  console.error('usage: ws_echo_server.js none|deflate');
  process.exit(2);
}
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  maxPayload: 64 * 1024 * 1024,
  perMessageDeflate: mode === 'deflate' ? { threshold: 0 } : false,
});
wss.on('listening', () => {
  console.log(JSON.stringify({ port: wss.address().port }));
});
wss.on('connection', (ws) => {
  let echoed = 0;
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary });
    echoed += 1;
  });
  ws.on('close', (code) => {
    console.log(JSON.stringify({ extensions: ws.extensions, echoed, close_code: code }));
  });
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
