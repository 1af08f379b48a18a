//! A certificate chain and its private key, from PEM files or bytes, checked
//! against each other.

use std::path::Path;

use tokio_rustls::rustls::pki_types::pem::{self, PemObject as _};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, InconsistentKeys};

use super::{PemOrigin, TlsError, provider};

/// Loads a certificate chain (end-entity certificate first, as Let's
/// Encrypt's `fullchain.pem`) and its private key (PKCS#8, PKCS#1 or SEC1)
/// from PEM files, and checks that the key belongs to the certificate.
///
/// ```no_run
/// let key = wshub::tls::load_pem_files("fullchain.pem", "privkey.pem")?;
/// println!("{} certificates in the chain", key.cert.len());
/// # Ok::<(), wshub::tls::TlsError>(())
/// ```
pub fn load_pem_files(
    cert: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> Result<CertifiedKey, TlsError> {
    let (cert, key) = (cert.as_ref(), key.as_ref());
    let cert_origin = PemOrigin::File(cert.to_owned());
    let key_origin = PemOrigin::File(key.to_owned());
    certified_key(read(cert)?, cert_origin, read(key)?, key_origin)
}

/// [`load_pem_files`] for PEM text already in memory (from a secret store,
/// or generated).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let generated = rcgen::generate_simple_self_signed(["localhost".to_owned()])?;
/// let key = wshub::tls::parse_pem(
///     generated.cert.pem().as_bytes(),
///     generated.signing_key.serialize_pem().as_bytes(),
/// )?;
/// assert_eq!(key.cert.len(), 1);
/// # Ok(()) }
/// ```
pub fn parse_pem(cert: &[u8], key: &[u8]) -> Result<CertifiedKey, TlsError> {
    certified_key(
        cert.to_vec(),
        PemOrigin::Memory("certificate"),
        key.to_vec(),
        PemOrigin::Memory("key"),
    )
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certified_key(
    cert_pem: Vec<u8>,
    cert_origin: PemOrigin,
    key_pem: Vec<u8>,
    key_origin: PemOrigin,
) -> Result<CertifiedKey, TlsError> {
    let chain = certificates(&cert_pem, &cert_origin)?;
    let key = private_key(&key_pem, &key_origin)?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::UnsupportedKey {
            origin: key_origin.clone(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // A key that cannot tell its public half is not a mismatch.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: cert_origin,
                key: key_origin,
            })
        }
        Err(source) => Err(TlsError::InvalidCertificate {
            origin: cert_origin,
            source,
        }),
    }
}

fn certificates(pem: &[u8], origin: &PemOrigin) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(error, origin, TlsError::NoCertificate))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(origin.clone()));
    }
    Ok(chain)
}

fn private_key(pem: &[u8], origin: &PemOrigin) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|error| pem_error(error, origin, TlsError::NoKey))
}

/// "Nothing found" becomes `none` (the file holds something else); every
/// other PEM error says the text is malformed.
fn pem_error(error: pem::Error, origin: &PemOrigin, none: fn(PemOrigin) -> TlsError) -> TlsError {
    match error {
        pem::Error::NoItemsFound => none(origin.clone()),
        source => TlsError::Pem {
            origin: origin.clone(),
            source,
        },
    }
}
