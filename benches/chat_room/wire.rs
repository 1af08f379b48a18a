//! The client side of the wire, kept minimal so the load client costs little:
//! a hand-written opening handshake, pre-encoded masked frames, and frame
//! counting that reads headers only.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wshub::protocol::encode_frame;
use wshub::protocol::frame::OpCode;
use wshub::protocol::handshake::accept_key;

/// The 50 messages of Bun's `chat-client.mjs`; its batch is 32 rounds of them.
pub const MESSAGES: [&str; 50] = [
    "Hello World!",
    "Hello World! 1",
    "Hello World! 2",
    "Hello World! 3",
    "Hello World! 4",
    "Hello World! 5",
    "Hello World! 6",
    "Hello World! 7",
    "Hello World! 8",
    "Hello World! 9",
    "What is the meaning of life?",
    "where is the bathroom?",
    "zoo",
    "kangaroo",
    "erlang",
    "elixir",
    "bun",
    "mochi",
    "typescript",
    "javascript",
    "Hello World! 7",
    "Hello World! 8",
    "Hello World! 9",
    "What is the meaning of life?",
    "where is the bathroom?",
    "zoo",
    "kangaroo",
    "erlang",
    "elixir",
    "bun",
    "mochi",
    "typescript",
    "javascript",
    "Hello World! 7",
    "Hello World! 8",
    "Hello World! 9",
    "What is the meaning of life?",
    "Hello World! 7",
    "Hello World! 8",
    "Hello World! 9",
    "What is the meaning of life?",
    "where is the bathroom?",
    "zoo",
    "kangaroo",
    "erlang",
    "elixir",
    "bun",
    "mochi",
    "typescript",
    "javascript",
];

const NAMES: [&str; 26] = [
    "Alice", "Bob", "Charlie", "David", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Karl",
    "Linda", "Mike", "Nancy", "Oscar", "Peggy", "Quentin", "Ruth", "Steve", "Trudy", "Ursula",
    "Victor", "Wendy", "Xavier", "Yvonne", "Zach",
];

/// Client `i`'s name, in the order of Bun's client (`Alice0`, `Bob0`, …, `Alice1`, …).
pub fn name(i: usize) -> String {
    format!("{}{}", NAMES[i % NAMES.len()], i / NAMES.len())
}

/// xorshift64*: masks and handshake keys need to vary, not to be secret.
pub struct Rng(u64);

impl Rng {
    pub fn new(salt: u64) -> Self {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self((time ^ (u64::from(std::process::id()) << 32) ^ salt.wrapping_mul(0x9E37_79B9)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn mask(&mut self) -> [u8; 4] {
        (self.next() as u32).to_ne_bytes()
    }
}

/// `count` masked text frames cycling through [`MESSAGES`], as one buffer
/// sent with one write.
pub fn encode_batch(count: usize, rng: &mut Rng) -> Vec<u8> {
    let mut out = BytesMut::new();
    for msg in MESSAGES.iter().cycle().take(count) {
        encode_frame(&mut out, OpCode::Text, msg.as_bytes(), Some(rng.mask()));
    }
    out.to_vec()
}

/// One masked text frame.
pub fn encode_text(text: &str, rng: &mut Rng) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_frame(&mut out, OpCode::Text, text.as_bytes(), Some(rng.mask()));
    out.to_vec()
}

/// Opens a WebSocket to `ws://addr/?name=NAME`: connects (retrying while a
/// busy listener's backlog refuses), sends the upgrade request, checks the
/// 101 and its accept key. Returns the stream and any bytes read past the
/// response head (the first frames, if the server was quick).
pub async fn connect(
    addr: SocketAddr,
    name: &str,
    rng: &mut Rng,
) -> io::Result<(TcpStream, Vec<u8>)> {
    let mut stream = connect_tcp(addr).await?;
    stream.set_nodelay(true)?;
    let key_bytes: [u8; 16] = {
        let (a, b) = (rng.next(), rng.next());
        let mut key = [0; 16];
        key[..8].copy_from_slice(&a.to_ne_bytes());
        key[8..].copy_from_slice(&b.to_ne_bytes());
        key
    };
    let key = base64::engine::general_purpose::STANDARD.encode(key_bytes);
    let request = format!(
        "GET /?name={name} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(256);
    let end = loop {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed during the handshake",
            ));
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if head.len() > 16 * 1024 {
            return Err(io::Error::other("response head over 16 KiB"));
        }
    };
    let text = String::from_utf8_lossy(&head[..end]);
    let status = text.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Err(io::Error::other(format!("upgrade refused: {status}")));
    }
    let accept = accept_key(key.as_bytes());
    let accepted = text.lines().any(|line| {
        line.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("sec-websocket-accept") && v.trim() == accept
        })
    });
    if !accepted {
        return Err(io::Error::other("wrong or missing Sec-WebSocket-Accept"));
    }
    Ok((stream, head.split_off(end)))
}

async fn connect_tcp(addr: SocketAddr) -> io::Result<TcpStream> {
    let mut tries = 0;
    loop {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(error) if tries < 50 => {
                tries += 1;
                let _ = error;
                tokio::time::sleep(Duration::from_millis(20 * tries)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Counts the data frames of a byte stream fed in arbitrary pieces, reading
/// only headers: payloads are skipped, never copied, validated or stored.
#[derive(Debug, Default)]
pub struct FrameCounter {
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    /// Whether the frame being skipped is a data frame (counted once skipped).
    data: bool,
    /// A header split across reads.
    head: [u8; 14],
    head_len: usize,
    /// Control frames seen (pings, closes): not counted as messages.
    pub control: u64,
}

impl FrameCounter {
    /// Consumes `buf`; returns how many data frames it completed.
    pub fn feed(&mut self, mut buf: &[u8]) -> u64 {
        let mut frames = 0;
        loop {
            if self.skip > 0 {
                let n = self.skip.min(buf.len() as u64);
                self.skip -= n;
                buf = &buf[n as usize..];
                if self.skip > 0 {
                    return frames;
                }
            }
            if self.data {
                self.data = false;
                frames += 1;
            }
            if buf.is_empty() {
                return frames;
            }
            if self.head_len > 0 {
                // Rare: finish a header split across reads, byte by byte.
                self.head[self.head_len] = buf[0];
                self.head_len += 1;
                buf = &buf[1..];
                if let Some((len, used)) = parse_len(&self.head[..self.head_len]) {
                    debug_assert_eq!(used, self.head_len);
                    self.start_frame(self.head[0], len);
                    self.head_len = 0;
                }
                continue;
            }
            match parse_len(buf) {
                Some((len, used)) => {
                    self.start_frame(buf[0], len);
                    buf = &buf[used..];
                }
                None => {
                    self.head[..buf.len()].copy_from_slice(buf);
                    self.head_len = buf.len();
                    return frames;
                }
            }
        }
    }

    fn start_frame(&mut self, first: u8, len: u64) {
        let opcode = first & 0x0f;
        self.data = opcode < 0x8; // continuation, text, binary
        if !self.data {
            self.control += 1;
        }
        self.skip = len;
    }
}

/// The payload length and header size of the frame at the front of `buf`,
/// if its whole header is there.
fn parse_len(buf: &[u8]) -> Option<(u64, usize)> {
    let second = *buf.get(1)?;
    let masked = if second & 0x80 != 0 { 4 } else { 0 };
    let (len, size) = match second & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            4,
        ),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes), 10)
        }
        short => (u64::from(short), 2),
    };
    (buf.len() >= size + masked).then_some((len, size + masked))
}

/// Splits a byte stream into whole unmasked frames, for clients that read
/// payloads (the latency probe); keeps only an unfinished frame between reads.
#[derive(Debug, Default)]
pub struct FrameReader {
    partial: Vec<u8>,
}

impl FrameReader {
    /// Calls `each(opcode, payload)` for every whole frame completed by `buf`.
    pub fn feed(&mut self, buf: &[u8], mut each: impl FnMut(u8, &[u8])) {
        if self.partial.is_empty() {
            let used = split_frames(buf, &mut each);
            self.partial.extend_from_slice(&buf[used..]);
        } else {
            self.partial.extend_from_slice(buf);
            let used = split_frames(&self.partial, &mut each);
            self.partial.drain(..used);
        }
    }
}

/// Hands out the whole frames at the front of `buf`; returns the bytes used.
fn split_frames(buf: &[u8], each: &mut impl FnMut(u8, &[u8])) -> usize {
    let mut at = 0;
    while let Some((len, head)) = parse_len(&buf[at..]) {
        let end = at + head + len as usize;
        if end > buf.len() {
            break;
        }
        each(buf[at] & 0x0f, &buf[at + head..end]);
        at = end;
    }
    at
}

/// Checks the counter and the reader on frames of every length class split
/// at every kind of boundary (`cargo bench --bench chat_room -- selftest`).
pub fn selftest() -> Result<(), String> {
    let mut wire = BytesMut::new();
    for len in [0, 5, 125, 126, 300, 70_000] {
        encode_frame(&mut wire, OpCode::Text, &vec![b'x'; len], None);
    }
    encode_frame(&mut wire, OpCode::Ping, b"p", None);
    for piece in [1, 2, 3, 7, 64, 1000, wire.len()] {
        let mut counter = FrameCounter::default();
        let total: u64 = wire.chunks(piece).map(|c| counter.feed(c)).sum();
        if (total, counter.control) != (6, 1) {
            return Err(format!(
                "FrameCounter, pieces of {piece}: {total} data, {} control",
                counter.control
            ));
        }
        let mut reader = FrameReader::default();
        let mut lens = Vec::new();
        for chunk in wire.chunks(piece) {
            reader.feed(chunk, |_, payload| lens.push(payload.len()));
        }
        if lens != [0, 5, 125, 126, 300, 70_000, 1] {
            return Err(format!("FrameReader, pieces of {piece}: {lens:?}"));
        }
    }
    Ok(())
}
