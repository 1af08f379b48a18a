//! The frame decoder on any bytes: both roles, with and without
//! `permessage-deflate`, fed in pieces whose sizes the input picks.
//!
//! Input: a settings byte, a count `n` (mod 9), `n` piece sizes, the wire.
//! Checks the limits after every step, and that the pieces change nothing:
//! the same frames and error as when the wire arrives at once.
//!
//! `cargo +nightly fuzz run frame_parser`
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wshub::fuzz::{Inflater, deflate_decoder};
use wshub::protocol::frame::{MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use wshub::protocol::{Decoder, Frame, ProtocolError, Role};

/// The message size limits the settings byte picks from.
const LIMITS: [usize; 4] = [0, 125, 1024, 1 << 16];

/// Everything the decoder handed up.
#[derive(Debug, PartialEq)]
struct Outcome {
    frames: Vec<Frame>,
    error: Option<ProtocolError>,
    /// Bytes of an incomplete frame left when the input ran out.
    left: usize,
}

fn decoder(settings: u8, limit: usize) -> Decoder {
    let role = if settings & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let inflater = match settings >> 3 & 7 {
        4 => Inflater::new(false, 15, false),
        5 => Inflater::new(true, 15, false),
        6 => Inflater::new(true, 15, true),
        7 => Inflater::new(true, 9, true),
        _ => return Decoder::new(role, limit),
    };
    deflate_decoder(role, limit, inflater)
}

fn run(mut decoder: Decoder, wire: &[u8], sizes: &[usize], limit: usize) -> Outcome {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = wire;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, after) = rest.split_at(size.min(rest.len()));
        rest = after;
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    match &frame {
                        Frame::Message(message) => assert!(message.len() <= limit),
                        Frame::Ping(payload) | Frame::Pong(payload) => {
                            assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
                        }
                        Frame::Close(body) => assert!(body.reason.len() < MAX_CONTROL_PAYLOAD),
                    }
                    frames.push(frame);
                }
                Ok(None) => {
                    // Only the rest of one frame is ever held.
                    assert!(buf.len() < limit.max(MAX_CONTROL_PAYLOAD) + MAX_HEADER_LEN);
                    break;
                }
                Err(error) => {
                    return Outcome {
                        frames,
                        error: Some(error),
                        left: 0,
                    };
                }
            }
        }
    }
    Outcome {
        frames,
        error: None,
        left: buf.len(),
    }
}

fuzz_target!(|input: &[u8]| {
    let [settings, count, rest @ ..] = input else {
        return;
    };
    let count = usize::from(count % 9).min(rest.len());
    let (sizes, wire) = rest.split_at(count);
    let mut sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s) + 1).collect();
    if sizes.is_empty() {
        sizes.push(1);
    }
    let limit = LIMITS[usize::from(settings >> 1 & 3)];
    let pieces = run(decoder(*settings, limit), wire, &sizes, limit);
    let whole = run(decoder(*settings, limit), wire, &[wire.len().max(1)], limit);
    assert_eq!(pieces, whole);
});
