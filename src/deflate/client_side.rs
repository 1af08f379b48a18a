//! The client's side of `permessage-deflate` (RFC 7692 §5, §7.1): the
//! offer it makes, and the checks on the server's answer.

use http::HeaderValue;

use super::Compression;
use super::negotiate::{Negotiated, Offer, parse_offer, split_outside_quotes};

/// The offer a client makes for `config` (`None` when it compresses
/// neither way): it lets the server limit the client's window (we can
/// compress with any, or send uncompressed), asks the server to drop its
/// context when our inflater is shared, and to keep its window to our
/// inflater's when that one is small. A shared compressor keeps no context,
/// which the offer says too (RFC 7692 §7.1.1.1).
pub(crate) fn client_offer(config: Compression) -> Option<HeaderValue> {
    if !config.is_enabled() {
        return None;
    }
    let mut offer = String::from("permessage-deflate; client_max_window_bits");
    if !config.compress.is_dedicated() {
        offer.push_str("; client_no_context_takeover");
    }
    if !config.decompress.is_dedicated() {
        offer.push_str("; server_no_context_takeover");
    }
    let (inflate_window, _) = config.decompress.zlib_params();
    if config.decompress.is_dedicated() && inflate_window < 15 {
        offer.push_str(&format!("; server_max_window_bits={inflate_window}"));
    }
    HeaderValue::try_from(offer).ok()
}

/// Why a server's `Sec-WebSocket-Extensions` answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtensionError {
    /// The server named an extension that was not offered.
    #[error("the server accepted an extension that was not offered: {0}")]
    NotOffered(String),
    /// The `permessage-deflate` answer is malformed or does not fit the offer.
    #[error("the server's permessage-deflate answer does not fit the offer: {0}")]
    BadDeflate(String),
}

/// Reads a server's answer to [`client_offer`]: what both ends agreed to, or
/// `None` when the server declined compression.
pub(crate) fn client_accept<'a>(
    headers: impl IntoIterator<Item = &'a HeaderValue>,
    config: Compression,
) -> Result<Option<Negotiated>, ExtensionError> {
    let mut agreed = None;
    for value in headers {
        let text = value.to_str().map_err(|_| {
            ExtensionError::NotOffered(String::from_utf8_lossy(value.as_bytes()).into_owned())
        })?;
        for extension in split_outside_quotes::<','>(text) {
            let name = extension.split(';').next().unwrap_or_default().trim();
            if !config.is_enabled() || !name.eq_ignore_ascii_case("permessage-deflate") {
                return Err(ExtensionError::NotOffered(extension.to_owned()));
            }
            if agreed.is_some() {
                return Err(ExtensionError::BadDeflate("accepted twice".to_owned()));
            }
            let bad = || ExtensionError::BadDeflate(extension.to_owned());
            let answer = parse_offer(extension).ok_or_else(bad)?;
            agreed = Some(agreement(&answer, config).ok_or_else(bad)?);
        }
    }
    Ok(agreed)
}

/// What a well-formed `answer` to our offer for `config` means, unless it
/// breaks the offer.
fn agreement(answer: &Offer, config: Compression) -> Option<Negotiated> {
    // Asked for when our inflater is shared: the server must agree.
    if !config.decompress.is_dedicated() && !answer.server_no_context_takeover {
        return None;
    }
    let (inflate_window, _) = config.decompress.zlib_params();
    let asked_window = if config.decompress.is_dedicated() {
        inflate_window
    } else {
        15
    };
    let server_window = answer.server_max_window_bits.unwrap_or(15);
    if server_window > asked_window {
        return None;
    }
    let client_window = match answer.client_max_window_bits {
        // We offered the parameter without a value; the answer needs one.
        Some(None) => return None,
        Some(Some(bits)) => bits,
        None => 15,
    };
    Some(Negotiated {
        server_window,
        server_takeover: !answer.server_no_context_takeover,
        client_window,
        client_takeover: config.compress.is_dedicated() && !answer.client_no_context_takeover,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deflate::Compressor;
    use crate::protocol::Role;

    const DEDICATED: Compression = Compression {
        compress: Compressor::Dedicated,
        decompress: Compressor::Dedicated,
    };

    fn answer(answer: &str, config: Compression) -> Result<Option<Negotiated>, ExtensionError> {
        client_accept(&[HeaderValue::from_str(answer).unwrap()], config)
    }

    #[test]
    fn the_client_offer_says_what_its_compressors_need() {
        let offer = |config| client_offer(config).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(offer(Compression::DISABLED), None);
        assert_eq!(
            offer(Compression::SHARED).as_deref(),
            Some(
                "permessage-deflate; client_max_window_bits; client_no_context_takeover; \
                 server_no_context_takeover"
            )
        );
        assert_eq!(
            offer(DEDICATED).as_deref(),
            Some("permessage-deflate; client_max_window_bits")
        );
        let small = Compression {
            compress: Compressor::Shared,
            decompress: Compressor::Dedicated3KB,
        };
        assert_eq!(
            offer(small).as_deref(),
            Some(
                "permessage-deflate; client_max_window_bits; client_no_context_takeover; \
                 server_max_window_bits=9"
            )
        );
    }

    #[test]
    fn a_server_answer_to_our_offer_is_read_both_ways() {
        // What our own server answers a shared client with.
        let n = answer(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            Compression::SHARED,
        )
        .unwrap()
        .unwrap();
        assert_eq!(n.sent_by(Role::Client), (15, false));
        assert_eq!(n.received_by(Role::Client), (15, false));
        let n = answer(
            "permessage-deflate; client_max_window_bits=9; server_max_window_bits=10",
            DEDICATED,
        )
        .unwrap()
        .unwrap();
        assert_eq!(n.sent_by(Role::Client), (9, true));
        assert_eq!(n.received_by(Role::Client), (10, true));
        assert_eq!(
            answer("permessage-deflate", DEDICATED)
                .unwrap()
                .unwrap()
                .client_window,
            15
        );
        assert_eq!(client_accept(&[], DEDICATED), Ok(None));
    }

    #[test]
    fn answers_that_break_the_offer_fail() {
        for (bad, config) in [
            // Our shared inflater needs the server to drop its context.
            ("permessage-deflate", Compression::SHARED),
            // We offered the parameter without a value: the answer needs one.
            ("permessage-deflate; client_max_window_bits", DEDICATED),
            ("permessage-deflate; server_max_window_bits=7", DEDICATED),
            ("permessage-deflate; server_max_window_bits=010", DEDICATED),
            (
                "permessage-deflate; server_no_context_takeover=1",
                DEDICATED,
            ),
            ("permessage-deflate; mystery", DEDICATED),
            ("permessage-deflate, permessage-deflate", DEDICATED),
        ] {
            assert!(
                matches!(answer(bad, config), Err(ExtensionError::BadDeflate(_))),
                "{bad}"
            );
        }
        let small = Compression {
            compress: Compressor::Dedicated,
            decompress: Compressor::Dedicated3KB,
        };
        assert!(answer("permessage-deflate; server_max_window_bits=10", small).is_err());
        assert!(answer("permessage-deflate; server_max_window_bits=9", small).is_ok());
        for (unasked, config) in [
            ("x-webkit-deflate-frame", DEDICATED),
            ("permessage-deflate", Compression::DISABLED),
        ] {
            assert!(
                matches!(answer(unasked, config), Err(ExtensionError::NotOffered(_))),
                "{unasked}"
            );
        }
    }
}
