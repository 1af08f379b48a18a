//! Negotiating `permessage-deflate` (RFC 7692 §5, §7.1): reading the
//! client's offers and writing the server's answer. The client's side is
//! in `client_side`.

use http::HeaderValue;

use super::{Compression, Compressor};
use crate::protocol::Role;

/// What one socket agreed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Negotiated {
    /// Window bits the server's compressor may use.
    pub(crate) server_window: u8,
    /// The server keeps its compression context between messages.
    pub(crate) server_takeover: bool,
    /// Window bits the client's compressor may use: our inflater's window.
    pub(crate) client_window: u8,
    /// The client keeps its compression context between messages.
    pub(crate) client_takeover: bool,
}

impl Negotiated {
    /// The window bits and context takeover of the messages `role` sends.
    pub(crate) fn sent_by(&self, role: Role) -> (u8, bool) {
        match role {
            Role::Server => (self.server_window, self.server_takeover),
            Role::Client => (self.client_window, self.client_takeover),
        }
    }

    /// The window bits and context takeover of the messages `role` receives.
    pub(crate) fn received_by(&self, role: Role) -> (u8, bool) {
        match role {
            Role::Server => self.sent_by(Role::Client),
            Role::Client => self.sent_by(Role::Server),
        }
    }
}

/// One offer's parameters; `None` where absent.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Offer {
    pub(super) server_no_context_takeover: bool,
    pub(super) client_no_context_takeover: bool,
    pub(super) server_max_window_bits: Option<u8>,
    /// `Some(None)`: the parameter without a value.
    pub(super) client_max_window_bits: Option<Option<u8>>,
}

/// Picks the first offer in `Sec-WebSocket-Extensions` that `config` can
/// honour, and the response header that accepts it.
///
/// Malformed offers (unknown or repeated parameters, bad values) are skipped;
/// `None` means the connection runs without compression.
pub(crate) fn negotiate<'a>(
    headers: impl IntoIterator<Item = &'a HeaderValue>,
    config: Compression,
) -> Option<(Negotiated, HeaderValue)> {
    if !config.is_enabled() {
        return None;
    }
    headers
        .into_iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(split_outside_quotes::<','>)
        .filter_map(parse_offer)
        .find_map(|offer| accept(&offer, config))
}

/// The answer to `offer`, unless `config` cannot honour it.
fn accept(offer: &Offer, config: Compression) -> Option<(Negotiated, HeaderValue)> {
    let (our_server_window, _) = config.compress.zlib_params();
    let server_window = offer
        .server_max_window_bits
        .map_or(our_server_window, |bits| bits.min(our_server_window));
    // zlib cannot write raw deflate with an 8-bit window.
    if server_window < 9 && config.compress != Compressor::Disabled {
        return None;
    }
    let server_takeover = config.compress.is_dedicated() && !offer.server_no_context_takeover;
    let (our_client_window, _) = config.decompress.zlib_params();
    let client_window = match offer.client_max_window_bits {
        Some(offered) => our_client_window.min(offered.unwrap_or(15)),
        // The client did not let us limit its window: it may use all 15 bits.
        None => 15,
    };
    let client_takeover = config.decompress.is_dedicated();

    let mut response = String::from("permessage-deflate");
    if !server_takeover {
        response.push_str("; server_no_context_takeover");
    }
    if offer.server_max_window_bits.is_some() || server_window < 15 {
        response.push_str(&format!("; server_max_window_bits={server_window}"));
    }
    if !client_takeover {
        response.push_str("; client_no_context_takeover");
    }
    if offer.client_max_window_bits.is_some() && client_window < 15 {
        response.push_str(&format!("; client_max_window_bits={client_window}"));
    }
    let negotiated = Negotiated {
        server_window,
        server_takeover,
        client_window,
        client_takeover,
    };
    HeaderValue::try_from(response)
        .ok()
        .map(|value| (negotiated, value))
}

/// Parses one extension; `None` unless it is a well-formed deflate offer.
pub(super) fn parse_offer(extension: &str) -> Option<Offer> {
    let mut parts = split_outside_quotes::<';'>(extension);
    if !parts.next()?.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut offer = Offer::default();
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(unquote(value.trim())?)),
            None => (param, None),
        };
        match (name.to_ascii_lowercase().as_str(), value) {
            ("server_no_context_takeover", None) if !offer.server_no_context_takeover => {
                offer.server_no_context_takeover = true;
            }
            ("client_no_context_takeover", None) if !offer.client_no_context_takeover => {
                offer.client_no_context_takeover = true;
            }
            ("server_max_window_bits", Some(value)) if offer.server_max_window_bits.is_none() => {
                offer.server_max_window_bits = Some(window_bits(value)?);
            }
            ("client_max_window_bits", value) if offer.client_max_window_bits.is_none() => {
                let bits = match value {
                    Some(value) => Some(window_bits(value)?),
                    None => None,
                };
                offer.client_max_window_bits = Some(bits);
            }
            _ => return None,
        }
    }
    Some(offer)
}

/// A window size: 8 to 15, digits only, no leading zero (RFC 7692 §7.1.2).
fn window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

/// The content of a quoted string, or a bare token.
fn unquote(value: &str) -> Option<&str> {
    match value.strip_prefix('"') {
        Some(rest) => rest
            .strip_suffix('"')
            .filter(|inner| !inner.contains(['"', '\\'])),
        None => Some(value),
    }
}

/// `s` split at `SEP` except inside double quotes, each piece trimmed,
/// empty pieces skipped.
pub(super) fn split_outside_quotes<const SEP: char>(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        loop {
            if rest.is_empty() {
                return None;
            }
            let mut quoted = false;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    if c == '"' {
                        quoted = !quoted;
                    }
                    c == SEP && !quoted
                })
                .map_or(rest.len(), |(i, _)| i);
            let piece = rest[..end].trim();
            rest = rest.get(end + 1..).unwrap_or("");
            if !piece.is_empty() {
                return Some(piece);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(offers: &[&str], config: Compression) -> Option<(Negotiated, String)> {
        let values: Vec<HeaderValue> = offers
            .iter()
            .map(|o| HeaderValue::from_str(o).unwrap())
            .collect();
        negotiate(&values, config).map(|(n, v)| (n, v.to_str().unwrap().to_owned()))
    }

    const DEDICATED: Compression = Compression {
        compress: Compressor::Dedicated,
        decompress: Compressor::Dedicated,
    };

    #[test]
    fn shared_demands_no_context_takeover_both_ways() {
        let (n, response) = run(
            &["permessage-deflate; client_max_window_bits"],
            Compression::SHARED,
        )
        .unwrap();
        assert_eq!(
            response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert_eq!(
            n,
            Negotiated {
                server_window: 15,
                server_takeover: false,
                client_window: 15,
                client_takeover: false
            }
        );
    }

    #[test]
    fn dedicated_keeps_context_unless_asked() {
        let (n, response) = run(&["permessage-deflate"], DEDICATED).unwrap();
        assert_eq!(response, "permessage-deflate");
        assert!(n.server_takeover && n.client_takeover);
        let (n, response) = run(
            &["permessage-deflate; server_no_context_takeover"],
            DEDICATED,
        )
        .unwrap();
        assert_eq!(response, "permessage-deflate; server_no_context_takeover");
        assert!(!n.server_takeover);
    }

    #[test]
    fn window_bits_are_honoured_and_limited() {
        let (n, response) =
            run(&["permessage-deflate; server_max_window_bits=9"], DEDICATED).unwrap();
        assert_eq!(response, "permessage-deflate; server_max_window_bits=9");
        assert_eq!(n.server_window, 9);
        // A small preset limits the client's window when the client allows it.
        let small = Compression {
            compress: Compressor::Dedicated8KB,
            decompress: Compressor::Dedicated8KB,
        };
        let (n, response) = run(&["permessage-deflate; client_max_window_bits"], small).unwrap();
        assert_eq!(
            response,
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"
        );
        assert_eq!((n.server_window, n.client_window), (10, 10));
        // Not allowed to limit it: our inflater takes the full window.
        let (n, _) = run(&["permessage-deflate"], small).unwrap();
        assert_eq!(n.client_window, 15);
        let (n, response) = run(
            &["permessage-deflate; client_max_window_bits=\"11\""],
            DEDICATED,
        )
        .unwrap();
        assert_eq!(response, "permessage-deflate; client_max_window_bits=11");
        assert_eq!(n.client_window, 11);
    }

    #[test]
    fn the_first_offer_we_can_honour_wins() {
        let offers = [
            "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10, permessage-deflate",
        ];
        let (n, response) = run(&offers, DEDICATED).unwrap();
        assert_eq!(
            response,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
        );
        assert_eq!(n.server_window, 10);
    }

    #[test]
    fn malformed_offers_are_declined() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; client_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; unknown_param",
            "permessage-deflate; client_max_window_bits=\"10",
            "permessage-deflate; ; ;=",
            "deflate-frame",
            "",
        ] {
            assert_eq!(run(&[bad], DEDICATED), None, "{bad:?}");
        }
        assert_eq!(run(&["permessage-deflate"], Compression::DISABLED), None);
    }

    #[test]
    fn window_8_needs_a_compressor_we_do_not_run() {
        let receive_only = Compression {
            compress: Compressor::Disabled,
            decompress: Compressor::Shared,
        };
        let (n, response) = run(
            &["permessage-deflate; server_max_window_bits=8"],
            receive_only,
        )
        .unwrap();
        assert_eq!(
            response,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=8; client_no_context_takeover"
        );
        assert_eq!(n.server_window, 8);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        const COMPRESSORS: [Compressor; 11] = [
            Compressor::Disabled,
            Compressor::Shared,
            Compressor::Dedicated,
            Compressor::Dedicated3KB,
            Compressor::Dedicated4KB,
            Compressor::Dedicated8KB,
            Compressor::Dedicated16KB,
            Compressor::Dedicated32KB,
            Compressor::Dedicated64KB,
            Compressor::Dedicated128KB,
            Compressor::Dedicated256KB,
        ];

        fn compression() -> impl Strategy<Value = Compression> {
            (
                prop::sample::select(COMPRESSORS.to_vec()),
                prop::sample::select(COMPRESSORS.to_vec()),
            )
                .prop_map(|(compress, decompress)| Compression {
                    compress,
                    decompress,
                })
        }

        /// One parameter of an offer as generated: its name (`None` for an
        /// unknown one) and its value, if any.
        #[derive(Debug, Clone)]
        struct Param {
            known: Option<&'static str>,
            value: Option<&'static str>,
            /// How it is written: name case, quotes, spaces.
            upper: bool,
            quoted: bool,
            spaced: bool,
        }

        #[derive(Debug, Clone)]
        struct GeneratedOffer {
            deflate: bool,
            params: Vec<Param>,
        }

        const NAMES: [&str; 4] = [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
        ];
        const VALUES: [&str; 12] = [
            "8", "9", "10", "11", "12", "14", "15", "7", "16", "010", "x", "",
        ];

        fn param() -> impl Strategy<Value = Param> {
            (
                prop_oneof![
                    8 => prop::sample::select(NAMES.to_vec()).prop_map(Some),
                    1 => Just(None),
                ],
                prop::option::weighted(0.6, prop::sample::select(VALUES.to_vec())),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            )
                .prop_map(|(known, value, upper, quoted, spaced)| Param {
                    known,
                    value,
                    upper,
                    quoted,
                    spaced,
                })
        }

        fn generated_offer() -> impl Strategy<Value = GeneratedOffer> {
            (
                prop::bool::weighted(0.85),
                prop::collection::vec(param(), 0..4),
            )
                .prop_map(|(deflate, params)| GeneratedOffer { deflate, params })
        }

        impl GeneratedOffer {
            fn render(&self) -> String {
                let mut out = String::from(if self.deflate {
                    "permessage-deflate"
                } else {
                    "x-webkit-deflate-frame"
                });
                for p in &self.params {
                    out.push_str(if p.spaced { " ;  " } else { ";" });
                    let name = p.known.unwrap_or("unknown_param");
                    if p.upper {
                        out.push_str(&name.to_ascii_uppercase());
                    } else {
                        out.push_str(name);
                    }
                    if let Some(value) = p.value {
                        out.push_str(if p.spaced { " = " } else { "=" });
                        if p.quoted {
                            out.push_str(&format!("\"{value}\""));
                        } else {
                            out.push_str(value);
                        }
                    }
                }
                out
            }

            /// The offer as RFC 7692 reads it, or `None` if it is malformed.
            fn model(&self) -> Option<Offer> {
                if !self.deflate {
                    return None;
                }
                let bits = |value: &str| -> Option<u8> {
                    let ok = !value.is_empty()
                        && !value.starts_with('0')
                        && value.bytes().all(|b| b.is_ascii_digit());
                    ok.then(|| value.parse().ok())
                        .flatten()
                        .filter(|b| (8..=15).contains(b))
                };
                let mut offer = Offer::default();
                for p in &self.params {
                    match (p.known?, p.value) {
                        ("server_no_context_takeover", None)
                            if !offer.server_no_context_takeover =>
                        {
                            offer.server_no_context_takeover = true;
                        }
                        ("client_no_context_takeover", None)
                            if !offer.client_no_context_takeover =>
                        {
                            offer.client_no_context_takeover = true;
                        }
                        ("server_max_window_bits", Some(v))
                            if offer.server_max_window_bits.is_none() =>
                        {
                            offer.server_max_window_bits = Some(bits(v)?);
                        }
                        ("client_max_window_bits", v) if offer.client_max_window_bits.is_none() => {
                            offer.client_max_window_bits = Some(match v {
                                Some(v) => Some(bits(v)?),
                                None => None,
                            });
                        }
                        _ => return None,
                    }
                }
                Some(offer)
            }
        }

        /// The parameters of an answer, each checked against RFC 7692 §7.1:
        /// only the four it defines, each once, window sizes 8 to 15.
        #[derive(Debug, Default)]
        struct Answer {
            server_no_context_takeover: bool,
            client_no_context_takeover: bool,
            server_max_window_bits: Option<u8>,
            client_max_window_bits: Option<u8>,
        }

        fn parse_answer(answer: &str) -> Result<Answer, TestCaseError> {
            let mut parts = answer.split("; ");
            prop_assert_eq!(parts.next(), Some("permessage-deflate"));
            let mut parsed = Answer::default();
            for part in parts {
                let bits = |value: &str| -> Result<u8, TestCaseError> {
                    let bits: u8 = value
                        .parse()
                        .map_err(|_| TestCaseError::fail(format!("bits {value:?}")))?;
                    prop_assert!((8..=15).contains(&bits), "{} in {:?}", bits, answer);
                    Ok(bits)
                };
                match part.split_once('=') {
                    None if part == "server_no_context_takeover"
                        && !parsed.server_no_context_takeover =>
                    {
                        parsed.server_no_context_takeover = true;
                    }
                    None if part == "client_no_context_takeover"
                        && !parsed.client_no_context_takeover =>
                    {
                        parsed.client_no_context_takeover = true;
                    }
                    Some(("server_max_window_bits", value))
                        if parsed.server_max_window_bits.is_none() =>
                    {
                        parsed.server_max_window_bits = Some(bits(value)?);
                    }
                    Some(("client_max_window_bits", value))
                        if parsed.client_max_window_bits.is_none() =>
                    {
                        parsed.client_max_window_bits = Some(bits(value)?);
                    }
                    _ => prop_assert!(false, "{:?} in {:?}", part, answer),
                }
            }
            Ok(parsed)
        }

        /// What the answer promises is what the socket runs with, and what
        /// the configured compressors can do.
        fn check_answer(
            negotiated: &Negotiated,
            answer: &str,
            config: Compression,
        ) -> Result<Answer, TestCaseError> {
            let parsed = parse_answer(answer)?;
            prop_assert_eq!(
                negotiated.server_window,
                parsed.server_max_window_bits.unwrap_or(15)
            );
            prop_assert_eq!(
                negotiated.server_takeover,
                !parsed.server_no_context_takeover
            );
            prop_assert_eq!(
                negotiated.client_window,
                parsed.client_max_window_bits.unwrap_or(15)
            );
            prop_assert_eq!(
                negotiated.client_takeover,
                !parsed.client_no_context_takeover
            );
            // A context is kept only by a compressor of the socket's own.
            prop_assert!(!negotiated.server_takeover || config.compress.is_dedicated());
            prop_assert!(!negotiated.client_takeover || config.decompress.is_dedicated());
            // zlib writes raw deflate with 9 bits at least.
            if config.compress != Compressor::Disabled {
                prop_assert!(negotiated.server_window >= 9, "{:?}", answer);
            }
            Ok(parsed)
        }

        fn header_values(offers: &[Vec<GeneratedOffer>]) -> Vec<HeaderValue> {
            offers
                .iter()
                .map(|line| {
                    let line: Vec<String> = line.iter().map(GeneratedOffer::render).collect();
                    HeaderValue::from_str(&line.join(", ")).unwrap()
                })
                .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// The first offer that is well formed and that the configured
            /// compressor can honour is accepted, as RFC 7692 §7.1 asks.
            #[test]
            fn answers_follow_the_first_acceptable_offer(
                offers in prop::collection::vec(prop::collection::vec(generated_offer(), 1..4), 1..3),
                config in compression(),
            ) {
                let values = header_values(&offers);
                let result = negotiate(&values, config);
                let (our_server_window, _) = config.compress.zlib_params();
                let chosen = offers.iter().flatten().filter_map(GeneratedOffer::model).find(|offer| {
                    let window = offer.server_max_window_bits.map_or(our_server_window, |b| b.min(our_server_window));
                    config.compress == Compressor::Disabled || window >= 9
                });
                let Some((negotiated, answer)) = result else {
                    prop_assert!(chosen.is_none() || !config.is_enabled(), "{:?} declined", chosen);
                    return Ok(());
                };
                prop_assert!(config.is_enabled());
                let Some(offer) = chosen else {
                    return Err(TestCaseError::fail(format!("accepted nothing acceptable: {answer:?}")));
                };
                let answer = answer.to_str().unwrap();
                let parsed = check_answer(&negotiated, answer, config)?;
                // §7.1.1.1: a server accepting server_no_context_takeover repeats it.
                prop_assert!(!offer.server_no_context_takeover || parsed.server_no_context_takeover);
                // §7.1.2.1: server_max_window_bits is answered, with the same or less.
                if let Some(offered) = offer.server_max_window_bits {
                    prop_assert!(parsed.server_max_window_bits.is_some_and(|b| b <= offered), "{:?}", answer);
                }
                // §7.1.2.2: client_max_window_bits only when offered, never more.
                match offer.client_max_window_bits {
                    None => prop_assert!(parsed.client_max_window_bits.is_none(), "{:?}", answer),
                    Some(offered) => {
                        let offered = offered.unwrap_or(15);
                        prop_assert!(parsed.client_max_window_bits.is_none_or(|b| b <= offered));
                    }
                }
            }
        }

        /// Pieces of the grammar, glued in any order.
        const SOUP: [&str; 14] = [
            "permessage-deflate",
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
            "=",
            ";",
            ",",
            "\"",
            " ",
            "\t",
            "15",
            "8",
            "x-webkit-deflate-frame",
        ];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any header text: no panic, and an answer that names only what
            /// RFC 7692 defines and matches what the socket runs with.
            #[test]
            fn any_header_gives_a_valid_answer_or_none(
                values in prop::collection::vec(
                    prop_oneof![
                        prop::collection::vec(prop::sample::select(SOUP.to_vec()), 0..12)
                            .prop_map(|tokens| tokens.concat().into_bytes()),
                        prop::collection::vec(any::<u8>(), 0..64),
                    ],
                    0..3,
                ),
                config in compression(),
            ) {
                let values: Vec<HeaderValue> = values
                    .iter()
                    .filter_map(|v| HeaderValue::from_bytes(v).ok())
                    .collect();
                if let Some((negotiated, answer)) = negotiate(&values, config) {
                    prop_assert!(config.is_enabled());
                    check_answer(&negotiated, answer.to_str().unwrap(), config)?;
                }
            }
        }
    }
}
