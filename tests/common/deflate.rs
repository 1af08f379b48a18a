//! A `permessage-deflate` client written by hand for the tests: its own
//! handshake with an offer, its own frame parser that shows the RSV bits,
//! and its own compressor and inflater (zlib-rs, raw deflate, sync flush),
//! so what the server puts on the wire is checked bit by bit.

use std::net::SocketAddr;

use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use zlib_rs::{Deflate, DeflateFlush, Inflate, InflateFlush, Status};

use super::{
    BINARY, CLOSE, CONTINUATION, FIN, HttpRequest, HttpResponse, RSV1, SAMPLE_ACCEPT, TEXT, masked,
    read_response, wait,
};

/// What a sync flush ends with; left off on the wire (RFC 7692 §7.2.1).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The client side's compressor: raw deflate with `window` bits.
pub struct ClientDeflater {
    deflate: Box<Deflate>,
    /// Keep the context between messages (context takeover).
    takeover: bool,
}

impl ClientDeflater {
    /// zlib's default level; `takeover` false resets after every message.
    pub fn new(window: u8, takeover: bool) -> Self {
        Self {
            deflate: Box::new(Deflate::new(6, false, window)),
            takeover,
        }
    }

    /// One message's payload: deflate, sync flush, tail removed.
    pub fn compress(&mut self, input: &[u8]) -> Vec<u8> {
        let compressed = deflate_sync(&mut self.deflate, input);
        if !self.takeover {
            self.deflate.reset();
        }
        compressed
    }
}

/// Compresses `input` with a sync flush and removes the tail.
pub fn deflate_sync(deflate: &mut Deflate, input: &[u8]) -> Vec<u8> {
    if input.is_empty() {
        // zlib writes nothing for an empty sync flush right after another;
        // one empty stored block's first byte is the RFC's answer (§7.2.3.6).
        return vec![0x00];
    }
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut rest = input;
    loop {
        let (in_before, out_before) = (deflate.total_in(), deflate.total_out());
        deflate
            .compress(rest, &mut chunk, DeflateFlush::SyncFlush)
            .expect("deflate");
        let took = (deflate.total_in() - in_before) as usize;
        let gave = (deflate.total_out() - out_before) as usize;
        rest = &rest[took..];
        out.extend_from_slice(&chunk[..gave]);
        if rest.is_empty() && gave < chunk.len() {
            break;
        }
    }
    assert!(out.ends_with(&TAIL), "a sync flush ends with 00 00 ff ff");
    out.truncate(out.len() - TAIL.len());
    out
}

/// The client side's inflater for the server's messages.
pub struct ClientInflater {
    inflate: Box<Inflate>,
    /// Keep the window between messages (the server keeps its context).
    takeover: bool,
}

impl ClientInflater {
    /// `takeover` false starts every message with an empty window, which
    /// fails on a message that refers to an earlier one.
    pub fn new(takeover: bool) -> Self {
        Self {
            inflate: Box::new(Inflate::new(false, 15)),
            takeover,
        }
    }

    /// Inflates one message's payload (the tail appended).
    pub fn inflate(&mut self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let result = inflate_sync(&mut self.inflate, payload);
        if !self.takeover {
            self.inflate.reset(false);
        }
        result
    }
}

fn inflate_sync(inflate: &mut Inflate, payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut rest = &input[..];
    loop {
        let (in_before, out_before) = (inflate.total_in(), inflate.total_out());
        let status = inflate
            .decompress(rest, &mut chunk, InflateFlush::SyncFlush)
            .map_err(|e| format!("inflate: {}", e.as_str()))?;
        let took = (inflate.total_in() - in_before) as usize;
        let gave = (inflate.total_out() - out_before) as usize;
        rest = &rest[took..];
        out.extend_from_slice(&chunk[..gave]);
        if status == Status::StreamEnd || (rest.is_empty() && gave < chunk.len()) {
            return Ok(out);
        }
        if took == 0 && gave == 0 {
            return Err("inflate made no progress".into());
        }
    }
}

/// A frame as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub fin: bool,
    pub rsv1: bool,
    /// RSV2 or RSV3.
    pub rsv23: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The code of a close frame (1005 when it has none).
    pub fn close_code(&self) -> u16 {
        assert_eq!(self.opcode, CLOSE, "not a close frame: {self:?}");
        match self.payload[..] {
            [a, b, ..] => u16::from_be_bytes([a, b]),
            _ => 1005,
        }
    }
}

/// A whole message as the server sent it: opcode and RSV1 of its first
/// frame, payload of all its frames joined (still compressed if RSV1).
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub opcode: u8,
    pub rsv1: bool,
    pub payload: Vec<u8>,
}

/// A client connection whose frames are made and read by hand.
pub struct DeflateWs {
    tcp: TcpStream,
    buf: BytesMut,
    /// The server's `Sec-WebSocket-Extensions`, if it accepted one.
    pub extensions: Option<String>,
    /// Control frames read while looking for a message, in order.
    pub controls: Vec<RawFrame>,
}

impl DeflateWs {
    /// Connects to `ws://addr{path}`, offering `offer` in
    /// `Sec-WebSocket-Extensions` unless it is `None`.
    pub async fn connect(addr: SocketAddr, path: &str, offer: Option<&str>) -> Self {
        let mut request = HttpRequest::upgrade(path);
        if let Some(offer) = offer {
            request = request.header("sec-websocket-extensions", offer);
        }
        let mut tcp = wait("the TCP connection", TcpStream::connect(addr))
            .await
            .unwrap();
        tcp.set_nodelay(true).unwrap();
        tcp.write_all(&request.to_bytes()).await.unwrap();
        let mut buf = BytesMut::new();
        let response: HttpResponse = read_response(&mut tcp, &mut buf).await;
        assert_eq!(response.status, 101, "{response:?}");
        assert_eq!(response.header("sec-websocket-accept"), Some(SAMPLE_ACCEPT));
        let extensions = response
            .header("sec-websocket-extensions")
            .map(str::to_owned);
        Self {
            tcp,
            buf,
            extensions,
            controls: Vec::new(),
        }
    }

    /// Writes `bytes` as they are.
    pub async fn write(&mut self, bytes: &[u8]) {
        wait("a write to the server", self.tcp.write_all(bytes))
            .await
            .unwrap();
    }

    /// Writes `bytes`, returning the error instead of failing: for peers
    /// the server may close on before they are done writing.
    pub async fn try_write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        wait("a write to the server", self.tcp.write_all(bytes)).await
    }

    /// Sends one whole message, compressed by `deflater` (RSV1) if given.
    pub async fn send(
        &mut self,
        opcode: u8,
        payload: &[u8],
        deflater: Option<&mut ClientDeflater>,
    ) {
        let frame = match deflater {
            Some(deflater) => masked(FIN | RSV1 | opcode, &deflater.compress(payload)),
            None => masked(FIN | opcode, payload),
        };
        self.write(&frame).await;
    }

    /// The next frame, read with nothing but RFC 6455 §5.2.
    pub async fn frame(&mut self) -> RawFrame {
        loop {
            if let Some(frame) = parse_frame(&mut self.buf) {
                return frame;
            }
            let read = wait("bytes from the server", self.tcp.read_buf(&mut self.buf)).await;
            match read {
                Ok(0) => panic!(
                    "the connection ended before a whole frame: {:?}",
                    &self.buf[..]
                ),
                Ok(_) => {}
                Err(error) => panic!("read failed: {error}"),
            }
        }
    }

    /// The next message, its fragments joined; pings and pongs on the way
    /// are kept in [`controls`](Self::controls). Fails on a close frame.
    pub async fn message(&mut self) -> RawMessage {
        let mut message: Option<RawMessage> = None;
        loop {
            let frame = self.frame().await;
            assert!(!frame.rsv23, "RSV2/RSV3 set: {frame:?}");
            match (frame.opcode, &mut message) {
                (CLOSE, _) => panic!("expected a message, got close {}", frame.close_code()),
                (op, _) if op >= CLOSE => {
                    assert!(!frame.rsv1, "RSV1 on a control frame: {frame:?}");
                    self.controls.push(frame);
                    continue;
                }
                (CONTINUATION, Some(partial)) => {
                    assert!(!frame.rsv1, "RSV1 on a continuation frame");
                    partial.payload.extend_from_slice(&frame.payload);
                }
                (TEXT | BINARY, None) => {
                    message = Some(RawMessage {
                        opcode: frame.opcode,
                        rsv1: frame.rsv1,
                        payload: frame.payload,
                    });
                }
                _ => panic!("unexpected frame {frame:?} (message so far: {message:?})"),
            }
            if frame.fin {
                return message.expect("a message");
            }
        }
    }

    /// The code of the server's close frame, which must be the next frame:
    /// a message or a ping before it fails the test (read those first, with
    /// [`message`](Self::message) or [`frame`](Self::frame)).
    pub async fn close_code(&mut self) -> u16 {
        let frame = self.frame().await;
        assert!(
            frame.opcode == CLOSE,
            "expected a close frame, got opcode {:#x} (fin {}, rsv1 {}) with {} bytes",
            frame.opcode,
            frame.fin,
            frame.rsv1,
            frame.payload.len()
        );
        frame.close_code()
    }

    /// The close frame, which must be the next frame, answered; waits for
    /// the server to end the connection and returns the close code.
    pub async fn closed_with(&mut self) -> u16 {
        let code = self.close_code().await;
        // Answering may fail if the server already hung up: that is fine.
        let _ = self
            .tcp
            .write_all(&masked(FIN | CLOSE, &code.to_be_bytes()))
            .await;
        let mut rest = Vec::new();
        let _ = wait(
            "the server to end the connection",
            self.tcp.read_to_end(&mut rest),
        )
        .await;
        code
    }

    /// Starts the close handshake with `code`; returns the code the server
    /// answers with (its next frame), once it has ended the connection.
    pub async fn close(&mut self, code: u16) -> u16 {
        self.write(&masked(FIN | CLOSE, &code.to_be_bytes())).await;
        let answer = self.close_code().await;
        let mut rest = Vec::new();
        let _ = wait(
            "the server to end the connection",
            self.tcp.read_to_end(&mut rest),
        )
        .await;
        answer
    }
}

/// Takes one whole frame off the front of `buf`, if it is all there.
fn parse_frame(buf: &mut BytesMut) -> Option<RawFrame> {
    if buf.len() < 2 {
        return None;
    }
    let (first, second) = (buf[0], buf[1]);
    assert_eq!(second & 0x80, 0, "the server masked a frame");
    let (len, at) = match second & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().unwrap()) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().unwrap()) as usize,
            10,
        ),
        len => (len as usize, 2),
    };
    if buf.len() < at + len {
        return None;
    }
    buf.advance(at);
    let payload = buf.split_to(len).to_vec();
    Some(RawFrame {
        fin: first & FIN != 0,
        rsv1: first & RSV1 != 0,
        rsv23: first & 0x30 != 0,
        opcode: first & 0x0f,
        payload,
    })
}
