//! Throughput of the WebSocket codec's hot paths, in bytes of payload per second:
//!
//! - `mask`: [`apply_mask`] (the blocked fast path) against [`apply_mask_scalar`]
//!   (byte at a time) on 16 B, 1 KiB, 64 KiB and 1 MiB buffers;
//! - `decode`: a server-role [`Decoder`] unmasking and parsing a buffer of many
//!   masked client frames (16 B text, 1 KiB binary, 64 KiB binary);
//! - `encode`: [`encode_frame`] writing unmasked server frames of the same sizes.
//!
//! Run with `cargo bench --bench codec` (add a filter such as
//! `cargo bench --bench codec -- mask` to run one group).

use std::hint::black_box;

use bytes::BytesMut;
use testkit::bench::{Bench, Throughput};
use wshub::protocol::frame::OpCode;
use wshub::protocol::mask::{apply_mask, apply_mask_scalar};
use wshub::protocol::{Decoder, Role, encode_frame};

/// An arbitrary masking key, as a client would pick.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The decoder's message size limit: far above every payload used here.
const MAX_PAYLOAD: usize = 16 << 20;

/// Buffer sizes for the masking group.
const MASK_SIZES: [usize; 4] = [16, 1 << 10, 64 << 10, 1 << 20];

/// One frame workload: a payload size and opcode, and how many frames of it
/// one iteration decodes or encodes (enough to amortize per-iteration costs).
struct Workload {
    label: &'static str,
    opcode: OpCode,
    size: usize,
    frames: usize,
}

const WORKLOADS: [Workload; 3] = [
    Workload {
        label: "16B_text",
        opcode: OpCode::Text,
        size: 16,
        frames: 10_000,
    },
    Workload {
        label: "1KiB_binary",
        opcode: OpCode::Binary,
        size: 1 << 10,
        frames: 1_000,
    },
    Workload {
        label: "64KiB_binary",
        opcode: OpCode::Binary,
        size: 64 << 10,
        frames: 16,
    },
];

impl Workload {
    /// The payload of every frame: ASCII, so it is also valid UTF-8 for text frames.
    fn payload(&self) -> Vec<u8> {
        (0..self.size).map(|i| b'a' + (i % 26) as u8).collect()
    }

    /// Payload bytes per iteration: what `Throughput::Bytes` counts.
    fn payload_bytes(&self) -> u64 {
        (self.size * self.frames) as u64
    }
}

/// A human-readable size for benchmark ids.
fn size_label(size: usize) -> String {
    match size {
        s if s >= 1 << 20 => format!("{}MiB", s >> 20),
        s if s >= 1 << 10 => format!("{}KiB", s >> 10),
        s => format!("{s}B"),
    }
}

/// Masking in place, the fast path and the scalar reference side by side.
/// XOR-ing the same buffer again each iteration is as much work as the first time.
fn bench_mask(bench: &Bench) {
    for size in MASK_SIZES {
        let bytes = Throughput::Bytes(size as u64);
        let mut buf: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let label = size_label(size);
        bench.iter(&format!("mask/apply_mask/{label}"), bytes, || {
            apply_mask(black_box(&mut buf[..]), black_box(MASK), black_box(0))
        });
        bench.iter(&format!("mask/apply_mask_scalar/{label}"), bytes, || {
            apply_mask_scalar(black_box(&mut buf[..]), black_box(MASK), black_box(0))
        });
    }
}

/// Decoding a buffer of masked client frames with a fresh server decoder.
/// The buffer is cloned in the untimed setup; the emptied buffer is returned
/// so that freeing it is untimed too.
fn bench_decode(bench: &Bench) {
    for w in &WORKLOADS {
        let payload = w.payload();
        let mut wire = BytesMut::new();
        for _ in 0..w.frames {
            encode_frame(&mut wire, w.opcode, &payload, Some(MASK));
        }
        bench.iter_batched(
            &format!("decode/server/{}", w.label),
            Throughput::Bytes(w.payload_bytes()),
            || wire.clone(),
            |mut src| {
                let mut decoder = Decoder::new(Role::Server, MAX_PAYLOAD);
                let mut decoded = 0;
                while let Some(frame) = decoder.decode(&mut src).expect("valid frames") {
                    black_box(frame);
                    decoded += 1;
                }
                assert_eq!(decoded, w.frames);
                src
            },
        );
    }
}

/// Encoding unmasked server frames into one reused, pre-grown buffer.
fn bench_encode(bench: &Bench) {
    for w in &WORKLOADS {
        let payload = w.payload();
        let mut dst = BytesMut::with_capacity(w.frames * (w.size + 14));
        bench.iter(
            &format!("encode/server/{}", w.label),
            Throughput::Bytes(w.payload_bytes()),
            || {
                dst.clear();
                for _ in 0..w.frames {
                    encode_frame(&mut dst, w.opcode, black_box(&payload), None);
                }
                black_box(&dst);
            },
        );
    }
}

/// Short runs (1 s of warm-up, 3 s in 20 samples each): the whole bench
/// takes about two minutes on two cores.
fn main() {
    let bench = Bench::from_args();
    bench_mask(&bench);
    bench_decode(&bench);
    bench_encode(&bench);
}
