// The chat server of Bun's WebSocket benchmark (bench/websocket-server in
// Bun's repository): every socket joins "room" on open, and every message is
// published to the room, sender included, as "name: message".
// Started by `cargo bench --bench chat_room`; run alone: PORT=4001 bun server.bun.js
const port = Number(process.env.PORT || 4001);

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  websocket: {
    open(ws) {
      ws.subscribe("room");
    },
    message(ws, msg) {
      // publishText returns 0 when the message was dropped.
      if (ws.publishText("room", `${ws.data.name}: ${msg}`) === 0) {
        throw new Error("Failed to publish message");
      }
    },
    perMessageDeflate: false,
    publishToSelf: true,
  },
  fetch(req, server) {
    const name = new URL(req.url).searchParams.get("name") || "anonymous";
    if (server.upgrade(req, { data: { name } })) return;
    return new Response("Upgrade failed", { status: 400 });
  },
});

console.log(`bun ${Bun.version} listening on ${server.hostname}:${server.port}`);
