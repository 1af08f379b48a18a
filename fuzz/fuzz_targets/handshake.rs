//! The opening handshake and `permessage-deflate` negotiation on request
//! heads built from any bytes.
//!
//! Input: a settings byte (method, version), then lines `name: value`; lines
//! that are not a valid header are skipped. A request that passes must be a
//! GET over HTTP/1.1 with a 16-byte key, and every negotiation answer must
//! name only what RFC 7692 defines and keep only the contexts the configured
//! compressors can keep.
//!
//! `cargo +nightly fuzz run handshake -- -dict=fuzz/handshake.dict`
#![no_main]

use http::header::{SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_PROTOCOL};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Version};
use libfuzzer_sys::fuzz_target;
use wshub::fuzz::negotiate;
use wshub::protocol::handshake::{accept_key, list_tokens, validate_request};
use wshub::{Compression, Compressor};

/// Server settings every request is negotiated against.
const CONFIGS: [Compression; 5] = [
    Compression::SHARED,
    Compression {
        compress: Compressor::Dedicated,
        decompress: Compressor::Dedicated,
    },
    Compression {
        compress: Compressor::Dedicated8KB,
        decompress: Compressor::Dedicated3KB,
    },
    Compression {
        compress: Compressor::Disabled,
        decompress: Compressor::Shared,
    },
    Compression {
        compress: Compressor::Dedicated3KB,
        decompress: Compressor::Disabled,
    },
];

fn headers(lines: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in lines.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = HeaderName::from_bytes(line[..colon].trim_ascii());
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) = (name, value) {
            headers.append(name, value);
        }
    }
    headers
}

/// Checks an answer against RFC 7692 §7.1 and what `config` can do.
fn check_answer(answer: &str, config: Compression) {
    let mut parts = answer.split("; ");
    assert_eq!(parts.next(), Some("permessage-deflate"), "{answer:?}");
    let mut seen = Vec::new();
    for part in parts {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        assert!(!seen.contains(&name), "{name} twice in {answer:?}");
        seen.push(name);
        match name {
            "server_no_context_takeover" | "client_no_context_takeover" => {
                assert!(value.is_empty(), "{answer:?}");
            }
            "server_max_window_bits" | "client_max_window_bits" => {
                let bits: u8 = value.parse().expect("window bits");
                assert!((8..=15).contains(&bits), "{answer:?}");
                if name == "server_max_window_bits" && config.compress != Compressor::Disabled {
                    assert!(bits >= 9, "zlib cannot compress with {answer:?}");
                }
            }
            _ => panic!("{name:?} in {answer:?}"),
        }
    }
    let shared = |c: Compressor| matches!(c, Compressor::Disabled | Compressor::Shared);
    if shared(config.compress) {
        assert!(seen.contains(&"server_no_context_takeover"), "{answer:?}");
    }
    if shared(config.decompress) {
        assert!(seen.contains(&"client_no_context_takeover"), "{answer:?}");
    }
}

fuzz_target!(|input: &[u8]| {
    let [settings, lines @ ..] = input else {
        return;
    };
    let method = match settings & 3 {
        0 | 1 => Method::GET,
        2 => Method::POST,
        _ => Method::CONNECT,
    };
    let version = if settings & 4 == 0 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let headers = headers(lines);
    if let Ok(key) = validate_request(&method, version, &headers) {
        assert_eq!((&method, version), (&Method::GET, Version::HTTP_11));
        assert_eq!(key.len(), 24);
        assert_eq!(accept_key(key.as_bytes()).len(), 28);
    }
    for token in list_tokens(&headers, &SEC_WEBSOCKET_PROTOCOL) {
        assert!(!token.is_empty() && !token.contains(','));
    }
    for config in CONFIGS {
        if let Some(answer) = negotiate(headers.get_all(SEC_WEBSOCKET_EXTENSIONS), config) {
            check_answer(&answer, config);
        }
    }
});
