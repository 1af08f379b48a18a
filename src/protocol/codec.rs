//! The frame decoder and encoder: bytes in, frames out, no I/O.

use bytes::{Buf, Bytes, BytesMut};

use super::close::{BadClose, CloseBody};
use super::frame::{FrameHeader, OpCode};
use super::mask::apply_mask;
use super::utf8::Utf8Validator;
use super::{Message, ProtocolError};

/// Which end of the connection a codec serves: it decides the masking rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Receives masked frames, sends unmasked ones.
    Server,
    /// Receives unmasked frames, sends masked ones.
    Client,
}

/// What the decoder hands up: a whole message or one control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete data message, its fragments joined.
    Message(Message),
    /// A ping with its payload.
    Ping(Bytes),
    /// A pong with its payload.
    Pong(Bytes),
    /// A close frame.
    Close(CloseBody),
}

/// The inflate step of `permessage-deflate` (RFC 7692), as the decoder
/// needs it: the decoder finds compressed messages (RSV1) and hands their
/// payload here. The codec stays pure; `crate::deflate` implements it.
pub(crate) trait InflateMessage: std::fmt::Debug + Send {
    /// Inflates one message (the payload of its frames, joined), failing as
    /// soon as it grows past `limit` bytes.
    fn inflate(&mut self, input: &[u8], limit: usize) -> Result<Vec<u8>, InflateFailure>;
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InflateFailure {
    /// It inflates to more than the limit.
    TooBig,
    /// It is not valid deflate data.
    Invalid,
}

/// Turns a byte stream fed in arbitrary pieces into [`Frame`]s.
///
/// Every rule that can be checked early is checked before the payload is
/// buffered: a message's size against the limit as soon as a header says how
/// long it will be, text as UTF-8 as each piece of payload arrives.
///
/// ```
/// use bytes::BytesMut;
/// use wshub::protocol::{Decoder, Frame, Role};
///
/// let mut decoder = Decoder::new(Role::Client, 1 << 20);
/// let mut wire = BytesMut::from(&b"\x81\x05Hello"[..]);
/// match decoder.decode(&mut wire) {
///     Ok(Some(Frame::Message(msg))) => assert_eq!(msg.as_text(), Some("Hello")),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    max_payload: usize,
    /// The header of the frame whose payload is still arriving.
    pending: Option<Pending>,
    /// The message whose later fragments are still to come (boxed: rare,
    /// and every idle connection carries a decoder).
    fragments: Option<Box<Fragments>>,
    utf8: Utf8Validator,
    /// Set when `permessage-deflate` was negotiated. Boxed twice: a thin
    /// pointer keeps the decoder, which every idle connection carries, as
    /// small as it was with a concrete inflater (64 bytes, not 72).
    inflater: Option<Box<Box<dyn InflateMessage>>>,
    /// The message being received has RSV1 set: it is compressed.
    compressed: bool,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    header: FrameHeader,
    /// Payload bytes already unmasked and validated, at the front of the buffer.
    seen: usize,
}

#[derive(Debug)]
struct Fragments {
    text: bool,
    buf: BytesMut,
}

impl Decoder {
    /// A decoder for `role` that rejects messages over `max_payload` bytes.
    pub fn new(role: Role, max_payload: usize) -> Self {
        Self {
            role,
            max_payload,
            pending: None,
            fragments: None,
            utf8: Utf8Validator::new(),
            inflater: None,
            compressed: false,
        }
    }

    /// Accepts compressed messages (RSV1), inflated with `inflater`.
    pub(crate) fn with_inflater(mut self, inflater: impl InflateMessage + 'static) -> Self {
        self.inflater = Some(Box::new(Box::new(inflater)));
        self
    }

    /// Decodes the next frame from the front of `src`, consuming its bytes.
    ///
    /// `Ok(None)` means more bytes are needed; whatever part of a frame is in
    /// `src` stays there (already unmasked and checked) for the next call.
    /// After an error the connection must be failed with the error's
    /// [`close_code`](ProtocolError::close_code).
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if self.pending.is_none() && self.fragments.is_none() {
            if let Some(frame) = self.short_message(src)? {
                return Ok(Some(frame));
            }
        }
        loop {
            let Pending { header, seen } = match self.pending {
                Some(pending) => pending,
                None => match self.next_header(src)? {
                    Some(header) => Pending { header, seen: 0 },
                    None => return Ok(None),
                },
            };
            // Bounded: control frames by 125, data frames by `max_payload`.
            let len = header.len as usize;
            let ready = src.len().min(len);
            if ready > seen {
                self.inspect(&header, &mut src[seen..ready], seen)?;
            }
            if ready < len {
                self.pending = Some(Pending {
                    header,
                    seen: ready,
                });
                return Ok(None);
            }
            self.pending = None;
            let payload = src.split_to(len);
            if let Some(frame) = self.complete(header, payload)? {
                return Ok(Some(frame));
            }
        }
    }

    /// The common case in one step: a whole short message (one frame, FIN
    /// set, no RSV bits, text or binary, under 126 bytes, masked as the role
    /// requires) already in `src`. `None` sends everything else down the
    /// general path, which checks every rule; every rule that applies to
    /// such a frame holds here too.
    #[inline]
    fn short_message(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        let [b0, b1, ..] = src[..] else {
            return Ok(None);
        };
        let text = match b0 {
            0x81 => true,
            0x82 => false,
            _ => return Ok(None),
        };
        let masked = b1 & 0x80 != 0;
        let len = usize::from(b1 & 0x7f);
        if len >= 126 || len > self.max_payload || masked != (self.role == Role::Server) {
            return Ok(None);
        }
        let header_len = if masked { 6 } else { 2 };
        if src.len() < header_len + len {
            return Ok(None);
        }
        let mask = masked.then(|| [src[2], src[3], src[4], src[5]]);
        src.advance(header_len);
        let mut payload = src.split_to(len);
        if let Some(mask) = mask {
            apply_mask(&mut payload, mask, 0);
        }
        self.compressed = false;
        let payload = payload.freeze();
        Ok(Some(Frame::Message(if text {
            Message::text_from_utf8(payload)?
        } else {
            Message::binary(payload)
        })))
    }

    /// How many more bytes the frame being received needs, once its header
    /// is known; 0 otherwise.
    pub fn frame_remaining(&self, buffered: usize) -> usize {
        self.pending
            .map_or(0, |p| (p.header.len as usize).saturating_sub(buffered))
    }

    /// Parses and checks the next header, and consumes it.
    fn next_header(&mut self, src: &mut BytesMut) -> Result<Option<FrameHeader>, ProtocolError> {
        let Some((header, header_len)) = FrameHeader::parse(src)? else {
            return Ok(None);
        };
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        let starts_message = matches!(header.opcode, OpCode::Text | OpCode::Binary);
        // RSV1 marks a compressed message, on its first frame only.
        if header.rsv23 || (header.rsv1 && !(starts_message && self.inflater.is_some())) {
            return Err(ProtocolError::ReservedBits);
        }
        match (header.opcode, &self.fragments) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation);
            }
            _ => {}
        }
        if !header.opcode.is_control() {
            let so_far = self.fragments.as_ref().map_or(0, |f| f.buf.len()) as u64;
            if so_far.saturating_add(header.len) > self.max_payload as u64 {
                return Err(ProtocolError::MessageTooBig {
                    limit: self.max_payload,
                });
            }
        }
        if starts_message {
            self.compressed = header.rsv1;
        }
        src.advance(header_len);
        Ok(Some(header))
    }

    /// Unmasks newly arrived payload bytes and validates them if they are text.
    fn inspect(
        &mut self,
        header: &FrameHeader,
        bytes: &mut [u8],
        offset: usize,
    ) -> Result<(), ProtocolError> {
        if let Some(mask) = header.mask {
            apply_mask(bytes, mask, offset);
        }
        let text = match header.opcode {
            // Compressed text is checked once inflated.
            _ if self.compressed && !header.opcode.is_control() => false,
            // A whole one-frame message is checked once, when it completes.
            OpCode::Text => !(header.fin && offset == 0 && bytes.len() as u64 == header.len),
            OpCode::Continuation => self.fragments.as_ref().is_some_and(|f| f.text),
            _ => false,
        };
        if text {
            self.utf8.feed(bytes)?;
        }
        Ok(())
    }

    /// Turns a complete frame into what the caller sees, if anything yet.
    fn complete(
        &mut self,
        header: FrameHeader,
        payload: BytesMut,
    ) -> Result<Option<Frame>, ProtocolError> {
        let frame = match header.opcode {
            OpCode::Ping => Frame::Ping(payload.freeze()),
            OpCode::Pong => Frame::Pong(payload.freeze()),
            OpCode::Close => Frame::Close(CloseBody::parse(&payload).map_err(|bad| match bad {
                BadClose::Code => ProtocolError::InvalidCloseCode,
                BadClose::Reason => ProtocolError::InvalidUtf8,
            })?),
            OpCode::Text | OpCode::Binary => {
                let text = header.opcode == OpCode::Text;
                if !header.fin {
                    self.fragments = Some(Box::new(Fragments { text, buf: payload }));
                    return Ok(None);
                }
                self.message(text, payload)?
            }
            OpCode::Continuation => {
                let Some(mut fragments) = self.fragments.take() else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                fragments.buf.extend_from_slice(&payload);
                if !header.fin {
                    self.fragments = Some(fragments);
                    return Ok(None);
                }
                let Fragments { text, buf } = *fragments;
                self.message(text, buf)?
            }
        };
        Ok(Some(frame))
    }

    fn message(&mut self, text: bool, payload: BytesMut) -> Result<Frame, ProtocolError> {
        if let (true, Some(inflater)) = (self.compressed, self.inflater.as_deref_mut()) {
            return inflated(&mut **inflater, self.max_payload, text, &payload);
        }
        let payload = payload.freeze();
        if text {
            self.utf8.finish()?;
            Ok(Frame::Message(Message::text_from_utf8(payload)?))
        } else {
            Ok(Frame::Message(Message::binary(payload)))
        }
    }
}

/// A compressed message, inflated and checked. Out of line: inflating costs
/// far more than the call, and the plain path stays small.
#[inline(never)]
fn inflated(
    inflater: &mut dyn InflateMessage,
    limit: usize,
    text: bool,
    payload: &[u8],
) -> Result<Frame, ProtocolError> {
    let inflated = inflater
        .inflate(payload, limit)
        .map_err(|failure| match failure {
            InflateFailure::TooBig => ProtocolError::MessageTooBig { limit },
            InflateFailure::Invalid => ProtocolError::InvalidCompressedData,
        })?;
    let message = Bytes::from(inflated);
    if text {
        Ok(Frame::Message(Message::text_from_utf8(message)?))
    } else {
        Ok(Frame::Message(Message::binary(message)))
    }
}

/// Appends one whole frame (FIN set, no RSV bits) to `dst`, masking the
/// payload with `mask` when given (the client role).
pub fn encode_frame(dst: &mut BytesMut, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) {
    encode_message_frame(dst, opcode, false, payload, mask);
}

/// Like [`encode_frame`], with RSV1 set when `compressed`: a whole
/// `permessage-deflate` message whose payload is already compressed.
pub fn encode_message_frame(
    dst: &mut BytesMut,
    opcode: OpCode,
    compressed: bool,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let header = FrameHeader {
        fin: true,
        rsv1: compressed,
        rsv23: false,
        opcode,
        mask,
        len: payload.len() as u64,
    };
    dst.reserve(header.encoded_len() + payload.len());
    header.encode(dst);
    let start = dst.len();
    dst.extend_from_slice(payload);
    if let Some(mask) = mask {
        apply_mask(&mut dst[start..], mask, 0);
    }
}

/// Just the header of a whole unmasked frame, for payloads sent without
/// copying; RSV1 set when `compressed`.
pub fn encode_header(dst: &mut BytesMut, opcode: OpCode, compressed: bool, len: usize) {
    let header = FrameHeader {
        fin: true,
        rsv1: compressed,
        rsv23: false,
        opcode,
        mask: None,
        len: len as u64,
    };
    dst.reserve(header.encoded_len());
    header.encode(dst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::FrameHeader;

    const MASK: [u8; 4] = [0xa1, 0xb2, 0xc3, 0xd4];

    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut dst = BytesMut::new();
        let header = FrameHeader {
            fin,
            rsv1: false,
            rsv23: false,
            opcode: OpCode::from_bits(opcode).unwrap(),
            mask: Some(MASK),
            len: payload.len() as u64,
        };
        header.encode(&mut dst);
        let start = dst.len();
        dst.extend_from_slice(payload);
        apply_mask(&mut dst[start..], MASK, 0);
        dst.to_vec()
    }

    /// Feeds `wire` in pieces of `step` bytes and collects every frame.
    fn decode_all(wire: &[u8], step: usize, limit: usize) -> Result<Vec<Frame>, ProtocolError> {
        let mut decoder = Decoder::new(Role::Server, limit);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for piece in wire.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(frame) = decoder.decode(&mut buf)? {
                frames.push(frame);
            }
        }
        assert!(buf.is_empty() || decoder.pending.is_some());
        Ok(frames)
    }

    #[test]
    fn fragmented_text_with_interleaved_ping_in_any_split() {
        let mut wire = frame(false, 1, "Hel".as_bytes());
        wire.extend(frame(true, 9, b"ping"));
        wire.extend(frame(false, 0, "lo, wö".as_bytes()));
        wire.extend(frame(true, 0, "rld".as_bytes()));
        for step in [1, 2, 3, 7, 64] {
            let frames = decode_all(&wire, step, 1 << 20).unwrap();
            assert_eq!(
                frames,
                vec![
                    Frame::Ping(Bytes::from_static(b"ping")),
                    Frame::Message(Message::from("Hello, wörld")),
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn every_length_class_round_trips() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let payload = vec![0x5a; len];
            let frames = decode_all(&frame(true, 2, &payload), 4096, 1 << 20).unwrap();
            assert_eq!(frames, vec![Frame::Message(Message::binary(payload))]);
        }
    }

    #[test]
    fn unmasked_client_frame_is_a_protocol_error() {
        let err = decode_all(b"\x81\x02hi", 1, 1024).unwrap_err();
        assert_eq!(err, ProtocolError::UnmaskedFrame);
        assert_eq!(err.close_code(), 1002);
    }

    #[test]
    fn client_role_rejects_masked_frames() {
        let mut decoder = Decoder::new(Role::Client, 1024);
        let mut buf = BytesMut::from(&frame(true, 1, b"hi")[..]);
        assert_eq!(decoder.decode(&mut buf), Err(ProtocolError::MaskedFrame));
    }

    #[test]
    fn continuation_rules() {
        assert_eq!(
            decode_all(&frame(true, 0, b"x"), 1, 1024),
            Err(ProtocolError::UnexpectedContinuation)
        );
        let mut wire = frame(false, 1, b"a");
        wire.extend(frame(true, 1, b"b"));
        assert_eq!(
            decode_all(&wire, 1, 1024),
            Err(ProtocolError::ExpectedContinuation)
        );
    }

    #[test]
    fn reserved_bits_are_rejected() {
        let mut wire = frame(true, 1, b"x");
        wire[0] |= 0x40;
        assert_eq!(decode_all(&wire, 1, 1024), Err(ProtocolError::ReservedBits));
    }

    #[test]
    fn size_is_checked_from_the_header_before_the_payload_arrives() {
        let wire = frame(true, 2, &vec![0; 2000]);
        let mut decoder = Decoder::new(Role::Server, 1000);
        // Only the header: the limit already trips.
        let mut buf = BytesMut::from(&wire[..8]);
        assert_eq!(
            decoder.decode(&mut buf),
            Err(ProtocolError::MessageTooBig { limit: 1000 })
        );
    }

    #[test]
    fn size_counts_the_sum_of_fragments() {
        let mut wire = Vec::new();
        for _ in 0..3 {
            wire.extend(frame(false, if wire.is_empty() { 2 } else { 0 }, &[0; 400]));
        }
        assert_eq!(
            decode_all(&wire, 100, 1000),
            Err(ProtocolError::MessageTooBig { limit: 1000 })
        );
        assert!(decode_all(&wire, 100, 1200).unwrap().is_empty());
    }

    #[test]
    fn invalid_utf8_fails_on_the_first_bad_fragment() {
        let mut decoder = Decoder::new(Role::Server, 1 << 20);
        let mut buf = BytesMut::from(&frame(false, 1, "κόσμε".as_bytes())[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&frame(false, 0, &[0xf4, 0x90, 0x80, 0x80])); // beyond U+10FFFF
        assert_eq!(decoder.decode(&mut buf), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn invalid_utf8_fails_inside_a_partly_received_frame() {
        let mut payload = "κόσμε".as_bytes().to_vec();
        payload.extend_from_slice(&[0xed, 0xa0, 0x80]); // a surrogate
        payload.extend_from_slice(&[b'x'; 100]);
        let wire = frame(true, 1, &payload);
        let mut decoder = Decoder::new(Role::Server, 1 << 20);
        // Everything but the last 100 bytes: the frame is incomplete, yet bad.
        let mut buf = BytesMut::from(&wire[..wire.len() - 100]);
        assert_eq!(decoder.decode(&mut buf), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn close_frames() {
        let frames = decode_all(&frame(true, 8, b"\x03\xe8bye"), 1, 1024).unwrap();
        assert_eq!(
            frames,
            vec![Frame::Close(CloseBody {
                code: 1000,
                reason: "bye".into()
            })]
        );
        assert_eq!(
            decode_all(&frame(true, 8, b"\x03"), 1, 1024),
            Err(ProtocolError::InvalidCloseCode)
        );
        assert_eq!(
            decode_all(&frame(true, 8, b"\x03\xed"), 1, 1024),
            Err(ProtocolError::InvalidCloseCode)
        );
        assert_eq!(
            decode_all(&frame(true, 8, b"\x03\xe8\xff"), 1, 1024),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn encoder_output_decodes_in_the_client_role() {
        let mut wire = BytesMut::new();
        encode_frame(&mut wire, OpCode::Text, "hé".as_bytes(), None);
        encode_header(&mut wire, OpCode::Binary, false, 70000);
        wire.extend_from_slice(&vec![7; 70000]);
        let mut decoder = Decoder::new(Role::Client, 1 << 20);
        assert_eq!(
            decoder.decode(&mut wire),
            Ok(Some(Frame::Message(Message::from("hé"))))
        );
        assert_eq!(
            decoder.decode(&mut wire),
            Ok(Some(Frame::Message(Message::binary(vec![7; 70000]))))
        );
        assert!(wire.is_empty());
    }

    #[test]
    fn masked_encoder_output_decodes_in_the_server_role() {
        let mut wire = BytesMut::new();
        encode_frame(&mut wire, OpCode::Binary, &[1, 2, 3, 4, 5], Some(MASK));
        let mut decoder = Decoder::new(Role::Server, 1024);
        assert_eq!(
            decoder.decode(&mut wire),
            Ok(Some(Frame::Message(Message::binary(vec![1, 2, 3, 4, 5]))))
        );
    }

    /// Short whole frames take the one-step path; fed a byte at a time they
    /// take the general one. Both must agree on every rule, the bad cases
    /// included.
    #[test]
    fn short_frames_decode_alike_whole_and_byte_by_byte() {
        let unmasked = |b0: u8, payload: &[u8]| {
            let mut wire = vec![b0, payload.len() as u8];
            wire.extend_from_slice(payload);
            wire
        };
        let cases: Vec<(Role, usize, Vec<u8>)> = vec![
            (Role::Server, 1024, frame(true, 1, "héllo".as_bytes())),
            (Role::Server, 1024, frame(true, 2, &[0; 125])),
            (Role::Server, 1024, frame(true, 2, b"")),
            (Role::Server, 4, frame(true, 2, b"12345")),
            (Role::Server, 1024, frame(true, 1, b"\xff\xfe")),
            (Role::Server, 1024, unmasked(0x82, b"hi")),
            (Role::Server, 1024, unmasked(0xc2, b"hi")),
            (Role::Client, 1024, unmasked(0x81, "hé".as_bytes())),
            (Role::Client, 1024, unmasked(0x81, b"\xc3")),
            (Role::Client, 1024, unmasked(0x82, b"")),
            (Role::Client, 1, unmasked(0x82, b"hi")),
            (Role::Client, 1024, unmasked(0xc1, b"hi")),
            (Role::Client, 1024, frame(true, 2, b"hi")),
        ];
        for (role, limit, wire) in cases {
            let whole = Decoder::new(role, limit).decode(&mut BytesMut::from(&wire[..]));
            let mut decoder = Decoder::new(role, limit);
            let mut buf = BytesMut::new();
            let mut piecewise = Ok(None);
            for byte in &wire {
                buf.extend_from_slice(&[*byte]);
                piecewise = decoder.decode(&mut buf);
                if !matches!(piecewise, Ok(None)) {
                    break;
                }
            }
            assert_eq!(whole, piecewise, "{role:?} limit {limit}: {wire:x?}");
            assert!(!matches!(whole, Ok(None)), "{wire:x?} decoded to nothing");
        }
    }
}
