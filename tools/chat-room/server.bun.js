// The chat server of Bun's WebSocket benchmark (bench/websocket-server in
// Bun's repository): every socket joins "room" on open, and every message is
// published to the room, sender included, as "name: message".
// Started by `chat-room` (tools/chat-room); run alone: PORT=4001 bun server.bun.js
//
// PER_MESSAGE_DEFLATE turns on permessage-deflate: "true" is Bun's
// `perMessageDeflate: true`; "COMPRESS/DECOMPRESS" (e.g. "dedicated/3KB") sets
// both compressors. Bun compresses only what is sent or published with
// `compress = true`, so this server passes it whenever deflate is on.
// A binary message (the chat clients send none) is echoed to its sender alone:
// the rss client sends one per connection so that its compressors exist.
// TLS_CERT and TLS_KEY (PEM files) serve wss:// instead of ws://.
const port = Number(process.env.PORT || 4001);
const deflate = parseDeflate(process.env.PER_MESSAGE_DEFLATE || "false");
const compress = deflate !== false;
const tls = process.env.TLS_CERT
  ? { cert: Bun.file(process.env.TLS_CERT), key: Bun.file(process.env.TLS_KEY) }
  : undefined;

function parseDeflate(value) {
  if (value === "false") return false;
  if (value === "true") return true;
  const [compress, decompress = compress] = value.split("/");
  return { compress, decompress };
}

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  tls,
  websocket: {
    open(ws) {
      ws.subscribe("room");
    },
    message(ws, msg) {
      if (typeof msg !== "string") {
        ws.send(msg, compress);
        return;
      }
      // publishText returns 0 when the message was dropped.
      if (ws.publishText("room", `${ws.data.name}: ${msg}`, compress) === 0) {
        throw new Error("Failed to publish message");
      }
    },
    perMessageDeflate: deflate,
    publishToSelf: true,
  },
  fetch(req, server) {
    const name = new URL(req.url).searchParams.get("name") || "anonymous";
    if (server.upgrade(req, { data: { name } })) return;
    return new Response("Upgrade failed", { status: 400 });
  },
});

console.log(
  `bun ${Bun.version} listening on ${tls ? "wss" : "ws"}://${server.hostname}:${server.port}, perMessageDeflate ${JSON.stringify(deflate)}`,
);
