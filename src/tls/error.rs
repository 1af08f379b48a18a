//! Why a certificate and key could not be loaded.

use std::fmt;
use std::io;
use std::path::PathBuf;

use tokio_rustls::rustls;

/// Why [`load_pem_files`](super::load_pem_files), [`parse_pem`](super::parse_pem)
/// or a [`ReloadableCert`](super::ReloadableCert) reload failed. Each variant
/// says which file (or in-memory PEM) it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file is missing or cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The text is not well-formed PEM (a section without its end line, bad
    /// base64, ...).
    #[error("{origin} is not valid PEM: {source}")]
    Pem {
        /// Where the text came from.
        origin: PemOrigin,
        /// What the PEM parser said.
        source: rustls::pki_types::pem::Error,
    },
    /// No `CERTIFICATE` section: perhaps the key was given in its place, or
    /// the file is DER rather than PEM.
    #[error("no certificate found in {0}")]
    NoCertificate(PemOrigin),
    /// No `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` section.
    #[error("no private key found in {0}")]
    NoKey(PemOrigin),
    /// The key is not one rustls (with the ring provider) can sign with: an
    /// unsupported algorithm or curve, or a malformed key.
    #[error("unsupported private key in {origin}: {source}")]
    UnsupportedKey {
        /// Where the key came from.
        origin: PemOrigin,
        /// What rustls said.
        source: rustls::Error,
    },
    /// The end-entity certificate (the first in the chain) cannot be parsed.
    #[error("invalid certificate in {origin}: {source}")]
    InvalidCertificate {
        /// Where the certificate came from.
        origin: PemOrigin,
        /// What rustls said.
        source: rustls::Error,
    },
    /// The private key is not the one the certificate was issued for.
    #[error("the private key in {key} does not match the certificate in {cert}")]
    KeyMismatch {
        /// Where the certificate came from.
        cert: PemOrigin,
        /// Where the key came from.
        key: PemOrigin,
    },
}

/// Where PEM text came from, as named in a [`TlsError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PemOrigin {
    /// A file.
    File(PathBuf),
    /// Bytes handed to [`parse_pem`](super::parse_pem): the certificate's
    /// (`"certificate"`) or the key's (`"key"`).
    Memory(&'static str),
}

impl fmt::Display for PemOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Memory(what) => write!(f, "the {what} PEM"),
        }
    }
}
