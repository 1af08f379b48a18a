//! Per-message compression (RFC 7692 `permessage-deflate`): the settings,
//! the negotiation, and the compressors, with uWebSockets' / Bun's choices.
//!
//! A *shared* compressor is one per thread, reset after every message (no
//! context takeover): no memory per socket, and a publish is compressed once
//! for every subscriber. A *dedicated* compressor belongs to one socket and
//! keeps its window between messages: better ratios, more memory. The sized
//! presets trade ratio for memory exactly as uWebSockets maps them to zlib's
//! window bits and memory level.

#[cfg(feature = "client")]
mod client_side;
mod codec;
mod negotiate;

#[cfg(feature = "client")]
pub use self::client_side::ExtensionError;
#[cfg(feature = "client")]
pub(crate) use self::client_side::{client_accept, client_offer};
pub(crate) use self::codec::{Deflater, Inflater, compress_shared};
pub(crate) use self::negotiate::{Negotiated, negotiate};

/// How one socket's outgoing messages are compressed.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// With this thread's shared compressor for `window` bits, no context.
    Shared { window: u8 },
    /// With the socket's own compressor.
    Dedicated(Deflater),
}

impl Outgoing {
    /// The compressor `config` asks for, within the `(window, takeover)`
    /// agreed for the messages this end sends; `None` when it does not
    /// compress. zlib cannot write raw deflate with an 8-bit window: a
    /// peer that allows no more gets every message uncompressed, which
    /// RFC 7692 permits.
    pub(crate) fn new(config: Compressor, (window, takeover): (u8, bool)) -> Option<Self> {
        if window < 9 {
            return None;
        }
        match config {
            Compressor::Disabled => None,
            Compressor::Shared => Some(Self::Shared { window }),
            dedicated => {
                let (_, mem_level) = dedicated.zlib_params();
                Some(Self::Dedicated(Deflater::new(window, mem_level, takeover)))
            }
        }
    }
}

/// One direction's compression choice, as in Bun's `perMessageDeflate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compressor {
    /// No compression this way.
    #[default]
    Disabled,
    /// One compressor per thread shared by every socket, no context kept
    /// between messages (negotiated with `*_no_context_takeover`).
    Shared,
    /// A compressor per socket keeping its context: the 256 KB preset.
    Dedicated,
    /// Dedicated, 3 KB of state (window 2^9, memory level 1).
    Dedicated3KB,
    /// Dedicated, 4 KB of state (window 2^9, memory level 2).
    Dedicated4KB,
    /// Dedicated, 8 KB of state (window 2^10, memory level 3).
    Dedicated8KB,
    /// Dedicated, 16 KB of state (window 2^11, memory level 4).
    Dedicated16KB,
    /// Dedicated, 32 KB of state (window 2^12, memory level 5).
    Dedicated32KB,
    /// Dedicated, 64 KB of state (window 2^13, memory level 6).
    Dedicated64KB,
    /// Dedicated, 128 KB of state (window 2^14, memory level 7).
    Dedicated128KB,
    /// Dedicated, 256 KB of state (window 2^15, memory level 8).
    Dedicated256KB,
}

impl Compressor {
    /// zlib's window bits and memory level for this choice (uWebSockets' table).
    pub(crate) fn zlib_params(self) -> (u8, u8) {
        match self {
            Self::Dedicated3KB => (9, 1),
            Self::Dedicated4KB => (9, 2),
            Self::Dedicated8KB => (10, 3),
            Self::Dedicated16KB => (11, 4),
            Self::Dedicated32KB => (12, 5),
            Self::Dedicated64KB => (13, 6),
            Self::Dedicated128KB => (14, 7),
            Self::Disabled | Self::Shared | Self::Dedicated | Self::Dedicated256KB => (15, 8),
        }
    }

    /// Whether each socket has its own state (and keeps context).
    pub(crate) fn is_dedicated(self) -> bool {
        !matches!(self, Self::Disabled | Self::Shared)
    }
}

/// Compression for both directions: what the server sends (`compress`) and
/// what it accepts from clients (`decompress`).
///
/// ```
/// use wshub::{Compression, Compressor, Config};
///
/// // Bun's `perMessageDeflate: true`: shared both ways.
/// let shared = Config::default().per_message_deflate(true);
/// assert_eq!(shared.compression, Compression::SHARED);
///
/// // Better ratios for a few long-lived sockets.
/// let dedicated = Config::default().compression(Compression {
///     compress: Compressor::Dedicated32KB,
///     decompress: Compressor::Dedicated,
/// });
/// # let _ = dedicated;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Compression {
    /// How messages this server sends are compressed.
    pub compress: Compressor,
    /// How compressed messages from clients are inflated.
    pub decompress: Compressor,
}

impl Compression {
    /// No `permessage-deflate` at all (the default).
    pub const DISABLED: Self = Self {
        compress: Compressor::Disabled,
        decompress: Compressor::Disabled,
    };

    /// Shared compressors both ways: Bun's `perMessageDeflate: true`.
    pub const SHARED: Self = Self {
        compress: Compressor::Shared,
        decompress: Compressor::Shared,
    };

    /// Whether the extension is offered at all.
    pub fn is_enabled(self) -> bool {
        self != Self::DISABLED
    }
}
