//! The client side of the wire, kept minimal so the load client costs little:
//! a hand-written opening handshake, pre-encoded masked frames, and frame
//! counting that reads headers only; `permessage-deflate` (RFC 7692) with
//! zlib-rs for the clients that offer it.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use wshub::protocol::frame::OpCode;
use wshub::protocol::handshake::accept_key;
use wshub::protocol::{encode_frame, encode_message_frame};
use zlib_rs::{Deflate, DeflateFlush, Inflate, InflateFlush, Status};

use crate::tls::Stream;

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

/// What a browser offers, and what the load clients offer with `--deflate`:
/// `permessage-deflate`, letting the server limit the client's window.
pub const DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// An open WebSocket connection, fresh from the handshake.
pub struct Connected {
    pub stream: Stream,
    /// Bytes read past the response head (the first frames, if the server was quick).
    pub early: Vec<u8>,
    /// The `permessage-deflate` parameters the server accepted, if it did.
    pub deflate: Option<Agreed>,
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
    let (early, _) = handshake(&mut stream, addr, &format!("name={name}"), rng, None).await?;
    Ok((stream, early))
}

/// [`connect`] to `ws://addr/?QUERY` (`name=NAME`, and `&room=ROOM` to join
/// another room than the server's default), offering the extension `offer`
/// (`Sec-WebSocket-Extensions`); to `wss://` with `tls`.
pub async fn connect_with(
    addr: SocketAddr,
    query: &str,
    rng: &mut Rng,
    offer: Option<&str>,
    tls: Option<&TlsConnector>,
) -> io::Result<Connected> {
    let tcp = connect_tcp(addr).await?;
    let mut stream = match tls {
        Some(connector) => Stream::tls(connector, addr, tcp).await?,
        None => Stream::Plain(tcp),
    };
    let (early, deflate) = handshake(&mut stream, addr, query, rng, offer).await?;
    Ok(Connected {
        stream,
        early,
        deflate,
    })
}

/// The opening handshake on `stream`: the bytes read past the response
/// head, and the `permessage-deflate` parameters agreed.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    addr: SocketAddr,
    query: &str,
    rng: &mut Rng,
    offer: Option<&str>,
) -> io::Result<(Vec<u8>, Option<Agreed>)> {
    let key_bytes: [u8; 16] = {
        let (a, b) = (rng.next(), rng.next());
        let mut key = [0; 16];
        key[..8].copy_from_slice(&a.to_ne_bytes());
        key[8..].copy_from_slice(&b.to_ne_bytes());
        key
    };
    let key = base64::engine::general_purpose::STANDARD.encode(key_bytes);
    let extensions = offer.map_or(String::new(), |offer| {
        format!("Sec-WebSocket-Extensions: {offer}\r\n")
    });
    let request = format!(
        "GET /?{query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         {extensions}\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    // TLS may hold back what the socket did not take at once.
    stream.flush().await?;
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
    if header(&text, "sec-websocket-accept") != Some(accept.as_str()) {
        return Err(io::Error::other("wrong or missing Sec-WebSocket-Accept"));
    }
    let deflate =
        match header(&text, "sec-websocket-extensions") {
            Some(answer) if offer.is_some() => Some(Agreed::parse(answer).ok_or_else(|| {
                io::Error::other(format!("unexpected extension answer {answer:?}"))
            })?),
            Some(answer) => {
                return Err(io::Error::other(format!(
                    "extension {answer:?} accepted but never offered"
                )));
            }
            None => None,
        };
    Ok((head.split_off(end), deflate))
}

/// The value of header `name` in a response head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// What the server answered to [`DEFLATE_OFFER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The largest window the client may compress with.
    pub client_window: u8,
}

impl Agreed {
    /// Parses a `permessage-deflate` answer; `None` for anything else.
    pub fn parse(answer: &str) -> Option<Self> {
        let mut params = answer.split(';').map(str::trim);
        if !params.next()?.eq_ignore_ascii_case("permessage-deflate") {
            return None;
        }
        let mut agreed = Self {
            server_no_context_takeover: false,
            client_window: 15,
        };
        for param in params {
            let (name, value) = match param.split_once('=') {
                Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
                None => (param, None),
            };
            match (name.to_ascii_lowercase().as_str(), value) {
                ("server_no_context_takeover", None) => agreed.server_no_context_takeover = true,
                // Our compressor resets after every message anyway.
                ("client_no_context_takeover", None) | ("server_max_window_bits", Some(_)) => {}
                ("client_max_window_bits", Some(bits)) => {
                    agreed.client_window = bits.parse().ok().filter(|b| (8..=15).contains(b))?;
                }
                _ => return None,
            }
        }
        Some(agreed)
    }

    /// How the answer reads in a report: whether the server keeps its
    /// compression context, and the client's window.
    pub fn describe(&self) -> String {
        format!(
            "server {}, client window {}",
            if self.server_no_context_takeover {
                "no context takeover"
            } else {
                "context takeover"
            },
            self.client_window
        )
    }
}

/// What a sync flush ends with; left off on the wire (RFC 7692 §7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The client's compressor: zlib's default level, raw deflate, the window
/// the server allowed, no context kept between messages (always allowed).
pub struct Compressor {
    deflate: Box<Deflate>,
}

impl Compressor {
    pub fn new(agreed: &Agreed) -> Self {
        // zlib writes raw deflate with 9 window bits at least.
        let window = agreed.client_window.max(9);
        Self {
            deflate: Box::new(Deflate::new(-1, false, window)),
        }
    }

    /// One message's compressed payload, to send with RSV1 set.
    pub fn compress(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; input.len() + 64];
        let (mut read, mut written) = (0, 0);
        loop {
            let (in_before, out_before) = (self.deflate.total_in(), self.deflate.total_out());
            self.deflate
                .compress(&input[read..], &mut out[written..], DeflateFlush::SyncFlush)
                .expect("zlib-rs compresses any input");
            read += (self.deflate.total_in() - in_before) as usize;
            written += (self.deflate.total_out() - out_before) as usize;
            // The flush is complete once all input is in and room is left.
            if read == input.len() && written < out.len() {
                break;
            }
            out.resize(out.len() * 2, 0);
        }
        self.deflate.reset();
        out.truncate(written);
        if out.ends_with(&TAIL) {
            out.truncate(written - TAIL.len());
        }
        out
    }

    /// One masked frame carrying `input` compressed (RSV1 set).
    pub fn frame(&mut self, opcode: OpCode, input: &[u8], rng: &mut Rng) -> Vec<u8> {
        let compressed = self.compress(input);
        let mut out = BytesMut::new();
        encode_message_frame(&mut out, opcode, true, &compressed, Some(rng.mask()));
        out.to_vec()
    }
}

/// The client's inflater, for checking what the server compressed.
pub struct Inflater {
    inflate: Box<Inflate>,
    /// The server keeps no context: every message inflates on its own.
    reset_each: bool,
}

impl Inflater {
    pub fn new(agreed: &Agreed) -> Self {
        Self {
            inflate: Box::new(Inflate::new(false, 15)),
            reset_each: agreed.server_no_context_takeover,
        }
    }

    /// Inflates one message's payload (as it came, without the tail).
    pub fn inflate(&mut self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = vec![0u8; payload.len() * 4 + 256];
        let mut written = 0;
        for part in [payload, &TAIL[..]] {
            let mut read = 0;
            loop {
                if written == out.len() {
                    out.resize(out.len() * 2, 0);
                }
                let (in_before, out_before) = (self.inflate.total_in(), self.inflate.total_out());
                let status = self
                    .inflate
                    .decompress(&part[read..], &mut out[written..], InflateFlush::SyncFlush)
                    .map_err(|e| format!("inflate: {e:?}"))?;
                read += (self.inflate.total_in() - in_before) as usize;
                written += (self.inflate.total_out() - out_before) as usize;
                if (read == part.len() && written < out.len()) || status == Status::StreamEnd {
                    break;
                }
            }
        }
        if self.reset_each {
            self.inflate.reset(false);
        }
        out.truncate(written);
        Ok(out)
    }
}

pub async fn connect_tcp(addr: SocketAddr) -> io::Result<TcpStream> {
    let mut tries = 0;
    loop {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
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
    /// Data frames with RSV1 set: compressed messages (`permessage-deflate`).
    pub compressed: u64,
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
        } else if first & RSV1 != 0 {
            self.compressed += 1;
        }
        self.skip = len;
    }
}

/// The bit of a frame's first byte that marks a compressed message.
pub const RSV1: u8 = 0x40;

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
    /// Calls `each(first, payload)` for every whole frame completed by
    /// `buf`, `first` being the frame's first byte (FIN, RSV1–3, opcode).
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
        each(buf[at], &buf[at + head..end]);
        at = end;
    }
    at
}

/// Checks the counter and the reader on frames of every length class split
/// at every kind of boundary (`chat-room selftest`).
pub fn selftest() -> Result<(), String> {
    let mut wire = BytesMut::new();
    for len in [0, 5, 125, 126, 300, 70_000] {
        encode_frame(&mut wire, OpCode::Text, &vec![b'x'; len], None);
    }
    encode_frame(&mut wire, OpCode::Ping, b"p", None);
    let agreed = Agreed::parse("permessage-deflate; server_no_context_takeover")
        .ok_or("cannot parse a deflate answer")?;
    let message = "Alice0: Hello World! ".repeat(20);
    let compressed = Compressor::new(&agreed).compress(message.as_bytes());
    encode_message_frame(&mut wire, OpCode::Text, true, &compressed, None);
    for piece in [1, 2, 3, 7, 64, 1000, wire.len()] {
        let mut counter = FrameCounter::default();
        let total: u64 = wire.chunks(piece).map(|c| counter.feed(c)).sum();
        if (total, counter.control, counter.compressed) != (7, 1, 1) {
            return Err(format!(
                "FrameCounter, pieces of {piece}: {total} data, {} control, {} compressed",
                counter.control, counter.compressed
            ));
        }
        let mut reader = FrameReader::default();
        let mut inflater = Inflater::new(&agreed);
        let mut lens = Vec::new();
        let mut inflated = Vec::new();
        for chunk in wire.chunks(piece) {
            reader.feed(chunk, |first, payload| {
                lens.push(payload.len());
                if first & RSV1 != 0 {
                    inflated.push(inflater.inflate(payload));
                }
            });
        }
        if lens != [0, 5, 125, 126, 300, 70_000, 1, compressed.len()] {
            return Err(format!("FrameReader, pieces of {piece}: {lens:?}"));
        }
        if inflated != [Ok(message.clone().into_bytes())] {
            return Err(format!(
                "Inflater, pieces of {piece}: {inflated:?} (sent {} bytes)",
                compressed.len()
            ));
        }
    }
    Ok(())
}

/// Says "hi" as `rng`'s client on a fresh connection and returns the first
/// data frames the chat server sends back (first byte, payload): for the
/// tests of each kind of load-client connection.
#[cfg(test)]
pub async fn say_hi(connected: Connected, rng: &mut Rng) -> Vec<(u8, Vec<u8>)> {
    let (mut reader, mut writer) = connected.stream.into_split();
    writer.write_all(&encode_text("hi", rng)).await.unwrap();
    writer.flush().await.unwrap();
    let mut frames = FrameReader::default();
    let mut got = Vec::new();
    let mut bytes = connected.early;
    let mut buf = [0u8; 1024];
    loop {
        frames.feed(&bytes, |first, payload| got.push((first, payload.to_vec())));
        if !got.is_empty() {
            return got;
        }
        let n = reader.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the echo");
        bytes = buf[..n].to_vec();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counter_reader_and_inflater_agree_on_split_frames() {
        super::selftest().unwrap();
    }
}
