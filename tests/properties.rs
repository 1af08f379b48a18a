//! Property tests of the pure protocol code: the frame codec, the header
//! parser and the streaming UTF-8 validator, against generated input fed in
//! arbitrary pieces.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proptest::sample::Index;
use wshub::protocol::frame::{FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode};
use wshub::protocol::mask::apply_mask;
use wshub::protocol::utf8::Utf8Validator;
use wshub::protocol::{Decoder, Frame, Role, encode_frame};
use wshub::{Message, ProtocolError};

/// A small deterministic generator for bulk bytes and masking keys: proptest
/// draws the seed, so a failure still reproduces.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn key(&mut self) -> [u8; 4] {
        (self.next() as u32).to_le_bytes()
    }

    fn fill(&mut self, len: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(len + 8);
        while bytes.len() < len {
            bytes.extend_from_slice(&self.next().to_le_bytes());
        }
        bytes.truncate(len);
        bytes
    }
}

// ---------------------------------------------------------------------------
// Generators

/// Payload lengths: mostly small, the length-encoding boundaries often,
/// anything up to 70 000 bytes sometimes.
fn length() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..=130,
        2 => prop::sample::select(vec![124, 125, 126, 127, 65_534, 65_535, 65_536, 65_537]),
        1 => 0usize..=70_000,
    ]
}

/// Text of a [`length`] in bytes, cycling through arbitrary characters and
/// padded with ASCII where the next character would not fit.
fn text() -> impl Strategy<Value = String> {
    (length(), prop::collection::vec(any::<char>(), 1..24)).prop_map(|(len, chars)| {
        let mut text = String::with_capacity(len);
        for c in chars.iter().cycle() {
            if text.len() + c.len_utf8() > len {
                break;
            }
            text.push(*c);
        }
        while text.len() < len {
            text.push('~');
        }
        text
    })
}

fn binary() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..=130),
        (length(), any::<u64>()).prop_map(|(len, seed)| XorShift::new(seed).fill(len)),
    ]
}

#[derive(Debug, Clone)]
enum Payload {
    Text(String),
    Binary(Vec<u8>),
}

impl Payload {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Text(text) => text.as_bytes(),
            Self::Binary(bytes) => bytes,
        }
    }

    fn opcode(&self) -> OpCode {
        match self {
            Self::Text(_) => OpCode::Text,
            Self::Binary(_) => OpCode::Binary,
        }
    }

    fn message(&self) -> Message {
        match self {
            Self::Text(text) => Message::text(text.clone()),
            Self::Binary(bytes) => Message::binary(bytes.clone()),
        }
    }
}

#[derive(Debug, Clone)]
struct Control {
    pong: bool,
    payload: Vec<u8>,
}

impl Control {
    fn frame(&self) -> Frame {
        let payload = Bytes::from(self.payload.clone());
        if self.pong {
            Frame::Pong(payload)
        } else {
            Frame::Ping(payload)
        }
    }
}

fn control() -> impl Strategy<Value = Control> {
    (
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..=MAX_CONTROL_PAYLOAD),
    )
        .prop_map(|(pong, payload)| Control { pong, payload })
}

/// One message and how it goes on the wire.
#[derive(Debug, Clone)]
struct Planned {
    payload: Payload,
    /// Where fragments end (payload offsets; unsorted, may repeat, so some
    /// fragments are empty).
    cuts: Vec<Index>,
    /// Control frames, each sent just before the fragment its index picks.
    controls: Vec<(Index, Control)>,
    /// A one-fragment message goes through `encode_frame`.
    via_encode_frame: bool,
}

fn planned() -> impl Strategy<Value = Planned> {
    (
        prop_oneof![
            text().prop_map(Payload::Text),
            binary().prop_map(Payload::Binary)
        ],
        prop::collection::vec(any::<Index>(), 0..4),
        prop::collection::vec((any::<Index>(), control()), 0..3),
        any::<bool>(),
    )
        .prop_map(|(payload, cuts, controls, via_encode_frame)| Planned {
            payload,
            cuts,
            controls,
            via_encode_frame,
        })
}

/// Sizes of the pieces the wire is fed in, used in turn: one byte at a time,
/// small pieces, or large ones.
fn chunking() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        1 => Just(vec![1]),
        2 => prop::collection::vec(1usize..=16, 1..8),
        2 => prop::collection::vec(1usize..=100_000, 1..8),
    ]
}

// ---------------------------------------------------------------------------
// The wire

/// What one frame on the wire is expected to do.
struct Sent {
    /// Its payload length if it is a data frame, and whether it starts a message.
    data: Option<(usize, bool)>,
    /// What the decoder hands up once the frame is complete.
    yields: Option<Frame>,
}

/// Builds the wire and what each frame on it should do.
struct Wire {
    bytes: BytesMut,
    sent: Vec<Sent>,
    /// Masking keys, client to server.
    keys: Option<XorShift>,
}

impl Wire {
    fn key(&mut self) -> Option<[u8; 4]> {
        self.keys.as_mut().map(XorShift::key)
    }

    fn control(&mut self, control: &Control) {
        let opcode = if control.pong {
            OpCode::Pong
        } else {
            OpCode::Ping
        };
        let key = self.key();
        encode_frame(&mut self.bytes, opcode, &control.payload, key);
        self.sent.push(Sent {
            data: None,
            yields: Some(control.frame()),
        });
    }

    fn message(&mut self, message: &Planned) {
        let bytes = message.payload.bytes();
        let mut ends: Vec<usize> = message
            .cuts
            .iter()
            .map(|i| i.index(bytes.len() + 1))
            .collect();
        ends.push(bytes.len());
        ends.sort_unstable();
        let fragments = ends.len();
        let mut start = 0;
        for (n, &end) in ends.iter().enumerate() {
            for (_, control) in message
                .controls
                .iter()
                .filter(|(at, _)| at.index(fragments) == n)
            {
                self.control(control);
            }
            let fin = n + 1 == fragments;
            let opcode = if n == 0 {
                message.payload.opcode()
            } else {
                OpCode::Continuation
            };
            let piece = &bytes[start..end];
            let key = self.key();
            if fragments == 1 && message.via_encode_frame {
                encode_frame(&mut self.bytes, opcode, piece, key);
            } else {
                let header = FrameHeader {
                    fin,
                    rsv1: false,
                    rsv23: false,
                    opcode,
                    mask: key,
                    len: piece.len() as u64,
                };
                header.encode(&mut self.bytes);
                let at = self.bytes.len();
                self.bytes.extend_from_slice(piece);
                if let Some(key) = key {
                    apply_mask(&mut self.bytes[at..], key, 0);
                }
            }
            self.sent.push(Sent {
                data: Some((piece.len(), n == 0)),
                yields: fin.then(|| Frame::Message(message.payload.message())),
            });
            start = end;
        }
    }
}

/// Encodes `plan` then `trailing` in order, masking every frame with a fresh
/// key drawn from `mask` when given.
fn encode_plan(plan: &[Planned], trailing: &[Control], mask: Option<u64>) -> (BytesMut, Vec<Sent>) {
    let mut wire = Wire {
        bytes: BytesMut::new(),
        sent: Vec::new(),
        keys: mask.map(XorShift::new),
    };
    for message in plan {
        wire.message(message);
    }
    for control in trailing {
        wire.control(control);
    }
    (wire.bytes, wire.sent)
}

/// What the decoder must hand up under `limit`: every frame up to the first
/// data frame that takes its message past the limit, then that error.
fn expected(sent: Vec<Sent>, limit: usize) -> (Vec<Frame>, Option<ProtocolError>) {
    let mut frames = Vec::new();
    let mut so_far = 0;
    for frame in sent {
        if let Some((len, first)) = frame.data {
            if first {
                so_far = 0;
            }
            so_far += len;
            if so_far > limit {
                return (frames, Some(ProtocolError::MessageTooBig { limit }));
            }
        }
        frames.extend(frame.yields);
    }
    (frames, None)
}

/// The outcome of feeding `wire` to a decoder in pieces of the `chunks` sizes.
#[derive(Debug, PartialEq)]
struct Decoded {
    frames: Vec<Frame>,
    error: Option<ProtocolError>,
    /// Bytes left over when the input ran out.
    left: usize,
}

/// `wire` cut in consecutive pieces of the `chunks` sizes, repeated as
/// needed (every size is at least 1), the last piece cut short.
fn pieces<'a>(wire: &'a [u8], chunks: &'a [usize]) -> impl Iterator<Item = &'a [u8]> {
    let mut at = 0;
    chunks.iter().cycle().map_while(move |&size| {
        (at < wire.len()).then(|| {
            let start = at;
            at = (at + size).min(wire.len());
            &wire[start..at]
        })
    })
}

fn decode_chunked(decoder: &mut Decoder, wire: &[u8], chunks: &[usize]) -> Decoded {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in pieces(wire, chunks) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(error) => {
                    return Decoded {
                        frames,
                        error: Some(error),
                        left: 0,
                    };
                }
            }
        }
    }
    Decoded {
        frames,
        error: None,
        left: buf.len(),
    }
}

fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(1 << 20), 1 => 0usize..=70_000]
}

fn check_round_trip(
    role: Role,
    plan: &[Planned],
    trailing: &[Control],
    mask_seed: u64,
    limit: usize,
    chunks: &[usize],
) -> Result<(), TestCaseError> {
    let mask = (role == Role::Server).then_some(mask_seed);
    let (wire, sent) = encode_plan(plan, trailing, mask);
    let (frames, error) = expected(sent, limit);
    let decoded = decode_chunked(&mut Decoder::new(role, limit), &wire, chunks);
    prop_assert_eq!(decoded.error, error);
    prop_assert!(decoded.frames == frames, "decoded frames differ");
    prop_assert_eq!(decoded.left, 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Client to server: masked frames, fragmented and interleaved with
    /// pings and pongs, decode to the messages sent whatever the pieces.
    #[test]
    fn masked_messages_round_trip_under_any_split(
        plan in prop::collection::vec(planned(), 1..6),
        trailing in prop::collection::vec(control(), 0..2),
        mask_seed in any::<u64>(),
        limit in limit(),
        chunks in chunking(),
    ) {
        check_round_trip(Role::Server, &plan, &trailing, mask_seed, limit, &chunks)?;
    }

    /// Server to client: the same, unmasked.
    #[test]
    fn unmasked_messages_round_trip_under_any_split(
        plan in prop::collection::vec(planned(), 1..6),
        trailing in prop::collection::vec(control(), 0..2),
        limit in limit(),
        chunks in chunking(),
    ) {
        check_round_trip(Role::Client, &plan, &trailing, 0, limit, &chunks)?;
    }
}

// ---------------------------------------------------------------------------
// Streaming UTF-8

/// Bytes around UTF-8's edges: continuation bytes, lead bytes of every
/// length, overlong and surrogate leads, bytes that never appear.
const EDGE_BYTES: [u8; 16] = [
    b'a', 0x7f, 0x80, 0x8f, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xf0, 0xf4, 0xf5,
];

fn utf8_input() -> impl Strategy<Value = Vec<u8>> {
    let corruption = (
        any::<Index>(),
        prop_oneof![prop::sample::select(EDGE_BYTES.to_vec()), any::<u8>(),],
    );
    prop_oneof![
        // Anything.
        prop::collection::vec(any::<u8>(), 0..64),
        // Edge bytes only: most combinations are near-valid.
        prop::collection::vec(prop::sample::select(EDGE_BYTES.to_vec()), 0..24),
        // Valid text, with a few bytes overwritten and maybe cut short.
        (
            prop::collection::vec(any::<char>(), 0..48),
            prop::collection::vec(corruption, 0..3),
            any::<Option<Index>>(),
        )
            .prop_map(|(chars, corruptions, cut)| {
                let mut bytes = chars.into_iter().collect::<String>().into_bytes();
                if !bytes.is_empty() {
                    for (at, byte) in corruptions {
                        let at = at.index(bytes.len());
                        bytes[at] = byte;
                    }
                }
                if let Some(cut) = cut {
                    bytes.truncate(cut.index(bytes.len() + 1));
                }
                bytes
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Fed in any pieces, the validator fails exactly when std finds bytes
    /// that no continuation can make valid, and accepts the whole input
    /// exactly when std does.
    #[test]
    fn utf8_validator_agrees_with_std(
        bytes in utf8_input(),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let mut ends: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        ends.push(bytes.len());
        ends.sort_unstable();
        let mut validator = Utf8Validator::new();
        let mut start = 0;
        let mut failed = false;
        for end in ends {
            let fed = validator.feed(&bytes[start..end]);
            // Invalid so far, as opposed to a code point still incomplete.
            let broken = std::str::from_utf8(&bytes[..end])
                .is_err_and(|e| e.error_len().is_some());
            prop_assert_eq!(fed.is_err(), broken, "after {} bytes", end);
            start = end;
            if broken {
                failed = true;
                break;
            }
        }
        if !failed {
            prop_assert_eq!(validator.finish().is_ok(), std::str::from_utf8(&bytes).is_ok());
        }
    }
}

// ---------------------------------------------------------------------------
// Frame headers

fn opcode() -> impl Strategy<Value = OpCode> {
    prop::sample::select(vec![
        OpCode::Continuation,
        OpCode::Text,
        OpCode::Binary,
        OpCode::Close,
        OpCode::Ping,
        OpCode::Pong,
    ])
}

/// Any header a peer may send: control frames final and short, lengths
/// below 2^63.
fn valid_header() -> impl Strategy<Value = FrameHeader> {
    let len = prop_oneof![
        0u64..=130,
        prop::sample::select(vec![125u64, 126, 127, 0xffff, 0x1_0000, (1 << 63) - 1]),
        0u64..(1 << 63),
    ];
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        opcode(),
        any::<Option<[u8; 4]>>(),
        len,
    )
        .prop_map(|(fin, rsv1, rsv23, opcode, mask, len)| {
            let control = opcode.is_control();
            FrameHeader {
                fin: fin || control,
                rsv1,
                rsv23,
                opcode,
                mask,
                len: if control {
                    len % (MAX_CONTROL_PAYLOAD as u64 + 1)
                } else {
                    len
                },
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn header_round_trips(header in valid_header(), extra in prop::collection::vec(any::<u8>(), 0..4)) {
        let mut buf = BytesMut::new();
        header.encode(&mut buf);
        prop_assert_eq!(buf.len(), header.encoded_len());
        let len = buf.len();
        buf.extend_from_slice(&extra);
        prop_assert_eq!(FrameHeader::parse(&buf), Ok(Some((header, len))));
        for cut in 0..len {
            prop_assert_eq!(FrameHeader::parse(&buf[..cut]), Ok(None));
        }
    }

    /// Any bytes: no panic, a length within the input, the same answer from
    /// the header's own bytes, "need more" from every shorter prefix, and
    /// errors that the bytes justify.
    #[test]
    fn header_parse_of_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..20)) {
        match FrameHeader::parse(&bytes) {
            Ok(Some((header, len))) => {
                prop_assert!(len <= bytes.len() && len <= MAX_HEADER_LEN);
                prop_assert!(len >= header.encoded_len());
                prop_assert_eq!(FrameHeader::parse(&bytes[..len]), Ok(Some((header, len))));
                for cut in 0..len {
                    prop_assert_eq!(FrameHeader::parse(&bytes[..cut]), Ok(None));
                }
            }
            Ok(None) => prop_assert!(bytes.len() < MAX_HEADER_LEN),
            Err(error) => {
                let (b0, b1) = (bytes[0], bytes[1]);
                let control = b0 & 0x08 != 0;
                let justified = match error {
                    ProtocolError::ReservedOpcode(bits) => {
                        bits == b0 & 0x0f && OpCode::from_bits(bits).is_err()
                    }
                    ProtocolError::FragmentedControlFrame => control && b0 & 0x80 == 0,
                    ProtocolError::ControlFrameTooLong => control && b1 & 0x7f > 125,
                    ProtocolError::InvalidLength => b1 & 0x7f == 127 && bytes[2] & 0x80 != 0,
                    _ => false,
                };
                prop_assert!(justified, "{:?} from {:x?}", error, bytes);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The decoder on hostile input

/// Frames with any first byte, the mask bit usually right for the role,
/// lengths in any of the three encodings (not always the shortest), and
/// payloads that are text often enough to get past UTF-8 checks.
fn hostile_frames(masked: bool) -> impl Strategy<Value = Vec<u8>> {
    let frame = (
        prop_oneof![
            3 => prop::sample::select(vec![0x00u8, 0x01, 0x02, 0x80, 0x81, 0x82, 0x88, 0x89, 0x8a]),
            1 => any::<u8>(),
        ],
        prop::bool::weighted(0.9),
        0u8..3,
        prop_oneof![0u64..=130, 0u64..=1100, any::<u64>()],
        any::<[u8; 4]>(),
        prop_oneof![
            prop::collection::vec(0x20u8..0x7f, 0..200),
            prop::collection::vec(any::<u8>(), 0..200),
        ],
    )
        .prop_map(move |(b0, right_mask, encoding, len, key, payload)| {
            let mut wire = vec![b0];
            let mask_bit = if right_mask == masked { 0x80 } else { 0 };
            match encoding {
                0 => wire.push(mask_bit | (len % 126) as u8),
                1 => {
                    wire.push(mask_bit | 126);
                    wire.extend_from_slice(&(len as u16).to_be_bytes());
                }
                _ => {
                    wire.push(mask_bit | 127);
                    wire.extend_from_slice(&len.to_be_bytes());
                }
            }
            if mask_bit != 0 {
                wire.extend_from_slice(&key);
            }
            // Payload up to the announced length, or short (the input ends).
            let mut payload = payload;
            if !payload.is_empty() {
                let want = len.min(1100) as usize;
                while payload.len() < want {
                    payload.extend_from_within(..payload.len().min(want - payload.len()));
                }
                payload.truncate(want);
            }
            let at = wire.len();
            wire.extend_from_slice(&payload);
            if mask_bit != 0 {
                apply_mask(&mut wire[at..], key, 0);
            }
            wire
        });
    prop::collection::vec(frame, 0..8).prop_map(|frames| frames.concat())
}

fn hostile_input(masked: bool) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        hostile_frames(masked),
    ]
}

/// Feeds `wire` and checks every step: frames within the limits, and after
/// "need more" only the rest of one frame left in the buffer.
fn check_bounded(role: Role, wire: &[u8], chunks: &[usize]) -> Result<(), TestCaseError> {
    const LIMIT: usize = 1024;
    let mut decoder = Decoder::new(role, LIMIT);
    let mut buf = BytesMut::new();
    for piece in pieces(wire, chunks) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(Frame::Message(message))) => prop_assert!(message.len() <= LIMIT),
                Ok(Some(Frame::Ping(payload) | Frame::Pong(payload))) => {
                    prop_assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
                }
                Ok(Some(Frame::Close(body))) => prop_assert!(body.reason.len() <= 123),
                Ok(None) => {
                    prop_assert!(
                        buf.len() < LIMIT + MAX_HEADER_LEN,
                        "{} bytes held",
                        buf.len()
                    );
                    break;
                }
                Err(_) => return Ok(()),
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn server_decoder_survives_any_bytes(wire in hostile_input(true), chunks in chunking()) {
        check_bounded(Role::Server, &wire, &chunks)?;
    }

    #[test]
    fn client_decoder_survives_any_bytes(wire in hostile_input(false), chunks in chunking()) {
        check_bounded(Role::Client, &wire, &chunks)?;
    }
}
