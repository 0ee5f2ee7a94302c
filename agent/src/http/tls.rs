//! HTTPS for the API with rustls (TLS 1.2 and 1.3 only, the ring provider reqwest already
//! uses): the certificate chain and key are read from PEM files and re-read when they change
//! (cert-manager renews them in place through the same Secret-volume swap as tokens), and
//! with `client_ca_file` every client must present a certificate signed by that CA.
//!
//! A reload that fails (half-written files, a key that does not match the certificate) keeps
//! the configuration in force and says so; new connections use the new one as soon as it
//! loads, open connections keep theirs.

use runnel_config::HttpTls;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use tokio_rustls::TlsAcceptor;

/// The files a TLS configuration is built from.
#[derive(Debug, Clone)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    /// The config section, for messages (`http.tls`, `inputs.forward.tls`).
    section: &'static str,
    /// ALPN protocols offered (`http/1.1` for the API; none for forward).
    alpn: Vec<Vec<u8>>,
}

/// The TLS configuration in force, and how reloads went.
pub struct Tls {
    files: Files,
    current: RwLock<TlsAcceptor>,
    last_bytes: Mutex<Vec<u8>>,
    reload_errors: std::sync::atomic::AtomicU64,
    last_error: Mutex<Option<String>>,
}

fn read(section: &str, what: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{section}.{what} {}: {e}", path.display()))
}

fn build(files: &Files, bytes: &Snapshot) -> Result<ServerConfig, String> {
    let sec = files.section;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes.cert)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{sec}.cert_file {}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{sec}.cert_file {}: no CERTIFICATE in the file",
            files.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&bytes.key)
        .map_err(|e| format!("{sec}.key_file {}: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("{sec}: {e}"))?;
    let builder = match (&files.client_ca, &bytes.client_ca) {
        (Some(path), Some(pem)) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem) {
                let c = c.map_err(|e| format!("{sec}.client_ca_file {}: {e}", path.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("{sec}.client_ca_file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "{sec}.client_ca_file {}: no CERTIFICATE in the file",
                    path.display()
                ));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("{sec}.client_ca_file {}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "{sec}: certificate {} and key {}: {e}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    config.alpn_protocols = files.alpn.clone();
    Ok(config)
}

/// The raw file contents one configuration is built from.
struct Snapshot {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl Snapshot {
    fn read(files: &Files) -> Result<Snapshot, String> {
        Ok(Snapshot {
            cert: read(files.section, "cert_file", &files.cert)?,
            key: read(files.section, "key_file", &files.key)?,
            client_ca: match &files.client_ca {
                Some(p) => Some(read(files.section, "client_ca_file", p)?),
                None => None,
            },
        })
    }

    /// One byte string that changes when any file does (lengths keep the parts apart).
    fn fingerprint(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.cert.len() + self.key.len() + 32);
        for part in [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()] {
            let part: &[u8] = part.map(Vec::as_slice).unwrap_or(&[]);
            v.extend_from_slice(&(part.len() as u64).to_le_bytes());
            v.extend_from_slice(part);
        }
        v
    }
}

impl Tls {
    /// Load the configured files; None when TLS is not configured. At start a broken file is
    /// an error.
    pub fn load(cfg: &HttpTls) -> Result<Option<Tls>, String> {
        Tls::load_section(cfg, "http.tls", vec![b"http/1.1".to_vec()])
    }

    /// [`Tls::load`] for another listener's `tls:` section with the same keys (the forward
    /// input), naming `section` in errors and offering `alpn`.
    pub fn load_section(
        cfg: &HttpTls,
        section: &'static str,
        alpn: Vec<Vec<u8>>,
    ) -> Result<Option<Tls>, String> {
        let (Some(cert), Some(key)) = (&cfg.cert_file, &cfg.key_file) else {
            return Ok(None);
        };
        let files = Files {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: cfg.client_ca_file.clone(),
            section,
            alpn,
        };
        let snap = Snapshot::read(&files)?;
        let config = build(&files, &snap)?;
        Ok(Some(Tls {
            files,
            current: RwLock::new(TlsAcceptor::from(Arc::new(config))),
            last_bytes: Mutex::new(snap.fingerprint()),
            reload_errors: std::sync::atomic::AtomicU64::new(0),
            last_error: Mutex::new(None),
        }))
    }

    /// The files to watch.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut v = vec![self.files.cert.clone(), self.files.key.clone()];
        v.extend(self.files.client_ca.clone());
        v
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        match self.current.read() {
            Ok(a) => a.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Re-read the files; unchanged contents do nothing, a broken set keeps the current one.
    pub fn reload(&self) {
        let snap = match Snapshot::read(&self.files) {
            Ok(s) => s,
            Err(e) => return self.failed(e),
        };
        let fp = snap.fingerprint();
        if let Ok(mut last) = self.last_bytes.lock() {
            if *last == fp {
                return;
            }
            *last = fp;
        }
        match build(&self.files, &snap) {
            Ok(config) => {
                if let Ok(mut cur) = self.current.write() {
                    *cur = TlsAcceptor::from(Arc::new(config));
                }
                if let Ok(mut e) = self.last_error.lock() {
                    *e = None;
                }
                tracing::info!(cert = %self.files.cert.display(), "http: TLS certificate reloaded");
            }
            Err(e) => self.failed(e),
        }
    }

    fn failed(&self, e: String) {
        self.reload_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::error!(error = %e, "http: TLS files are broken; keeping the certificate in force");
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(e);
        }
    }

    /// The last reload failure, if the latest attempt failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Append the reload counter to a Prometheus page.
    pub fn render(&self, out: &mut String) {
        out.push_str(&format!(
            "# HELP runnel_http_tls_reload_errors_total TLS certificate reloads that failed (the previous one was kept).\n\
             # TYPE runnel_http_tls_reload_errors_total counter\n\
             runnel_http_tls_reload_errors_total {}\n",
            self.reload_errors.load(std::sync::atomic::Ordering::Relaxed)
        ));
    }
}
