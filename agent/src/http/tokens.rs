//! The static-token [`Authorizer`]: bearer tokens listed in a YAML file (mounted from a
//! Secret) by the SHA-256 of the token, each with a name, rights and namespaces, plus the
//! anonymous policy for callers without a token.
//!
//! ```yaml
//! tokens:
//!   - { name: shop-team, token_sha256: "<64 hex>", namespaces: [shop], rights: [read] }
//!   - { name: platform,  token_sha256: "<64 hex>", namespaces: ["*"], rights: [read, ingest, metrics] }
//! ```
//!
//! Only hashes are stored, so the file (and a leaked copy of it) does not hold a usable
//! secret. A presented token is hashed and compared with every entry in constant time.

use super::auth::{
    is_loopback, Authorizer, DecideFuture, Decision, Namespaces, RequestMeta, Right,
    Unauthenticated,
};
use runnel_config::Anonymous;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use subtle::ConstantTimeEq;

/// Longest `Authorization` header value looked at; longer ones are refused unhashed.
const MAX_AUTHORIZATION_BYTES: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    tokens: Vec<EntryFormat>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFormat {
    name: String,
    token_sha256: String,
    namespaces: Vec<String>,
    rights: Vec<String>,
}

/// One token: its name, the SHA-256 of the secret, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEntry {
    /// Shown in logs and messages.
    pub name: String,
    sha256: [u8; 32],
    /// Rights held.
    pub rights: BTreeSet<Right>,
    /// Namespaces visible (`*` in the file = all).
    pub namespaces: Namespaces,
}

/// The tokens of one version of the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSet {
    entries: Vec<TokenEntry>,
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// SHA-256 of a token, as the file stores it.
pub fn sha256(token: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl TokenSet {
    /// Parse a tokens file; the error names the entry and what is wrong (never a hash).
    pub fn parse(text: &str) -> Result<TokenSet, String> {
        let f: FileFormat = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        let mut entries: Vec<TokenEntry> = Vec::with_capacity(f.tokens.len());
        for (i, e) in f.tokens.into_iter().enumerate() {
            let at = format!("tokens[{i}] ({:?})", e.name);
            if e.name.trim().is_empty() {
                return Err(format!("tokens[{i}]: name must not be empty"));
            }
            let sha256 = parse_hex32(&e.token_sha256).ok_or_else(|| {
                format!("{at}: token_sha256 must be 64 hex digits (sha256sum of the token)")
            })?;
            let mut rights = BTreeSet::new();
            for r in &e.rights {
                rights.insert(Right::parse(r).ok_or_else(|| {
                    format!("{at}: unknown right {r:?}; known: read, ingest, metrics")
                })?);
            }
            if rights.is_empty() {
                return Err(format!(
                    "{at}: rights must list at least one of read, ingest, metrics"
                ));
            }
            if e.namespaces.is_empty() {
                return Err(format!(
                    "{at}: namespaces must list namespaces, or \"*\" for all"
                ));
            }
            let namespaces = if e.namespaces.iter().any(|n| n == "*") {
                Namespaces::All
            } else {
                Namespaces::Only(e.namespaces.into_iter().collect())
            };
            if entries.iter().any(|x| x.name == e.name) {
                return Err(format!("{at}: name is used twice"));
            }
            if entries.iter().any(|x| x.sha256 == sha256) {
                return Err(format!("{at}: the same token hash is listed twice"));
            }
            entries.push(TokenEntry {
                name: e.name,
                sha256,
                rights,
                namespaces,
            });
        }
        Ok(TokenSet { entries })
    }

    /// Names of tokens with the `metrics` right but a namespace scope: `/metrics` and
    /// `/v1/status` are node-wide pages, so such a scope does not narrow them.
    pub fn scoped_metrics_tokens(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| e.rights.contains(&Right::Metrics) && !e.namespaces.is_all())
            .map(|e| e.name.as_str())
            .collect()
    }

    /// Say once per load that a `metrics` token's namespaces do not narrow the metrics.
    fn warn_node_wide(&self, path: &Path) {
        let names = self.scoped_metrics_tokens();
        if !names.is_empty() {
            tracing::warn!(
                path = %path.display(),
                tokens = ?names,
                "http: these tokens hold the metrics right with a namespace scope; /metrics and \
                 /v1/status are node-wide (every namespace's container metrics), the scope does \
                 not narrow them"
            );
        }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the set holds no token.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry whose hash matches `token`; every entry is compared, in constant time, so
    /// the time taken says nothing about which (or whether one) matched.
    pub fn find(&self, token: &[u8]) -> Option<&TokenEntry> {
        let h = sha256(token);
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.sha256.ct_eq(&h)) {
                found = Some(e);
            }
        }
        found
    }
}

/// The current tokens and how the last reload went, shared with the watcher.
pub struct TokensFile {
    path: PathBuf,
    current: RwLock<Arc<TokenSet>>,
    last_text: Mutex<Option<String>>,
    state: Mutex<ReloadState>,
}

/// How reloads went, for `/v1/status` and `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct ReloadState {
    /// Successful loads (the first one included).
    pub loads: u64,
    /// Failed reloads (the previous tokens were kept).
    pub errors: u64,
    /// The last failure, if the latest attempt failed.
    pub last_error: Option<String>,
    /// True while the file does not exist: no token is valid (the Secret was not created
    /// yet, or the file was removed from it, which revokes every token).
    pub missing: bool,
}

/// What a missing file means, for the log and `/v1/status`.
pub const MISSING_NOTE: &str =
    "does not exist: no token is valid, so every caller the anonymous policy does not admit \
     gets a 401 until the file appears (create the tokens Secret)";

impl TokensFile {
    /// Load the file. A broken file is an error here; a missing one is not (the Secret may be
    /// created after the agent starts): no token is valid until it appears, and the log and
    /// `/v1/status` say so.
    pub fn load(path: &Path) -> Result<TokensFile, String> {
        let (text, set) = match std::fs::read_to_string(path) {
            Ok(text) => {
                let set = TokenSet::parse(&text)
                    .map_err(|e| format!("http.auth.tokens_file {}: {e}", path.display()))?;
                set.warn_node_wide(path);
                (Some(text), set)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), "http: tokens file {MISSING_NOTE}");
                (None, TokenSet::default())
            }
            Err(e) => return Err(format!("http.auth.tokens_file {}: {e}", path.display())),
        };
        Ok(TokensFile {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(set)),
            state: Mutex::new(ReloadState {
                loads: u64::from(text.is_some()),
                missing: text.is_none(),
                ..Default::default()
            }),
            last_text: Mutex::new(text),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tokens in force.
    pub fn current(&self) -> Arc<TokenSet> {
        self.current
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Reload statistics.
    pub fn state(&self) -> ReloadState {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn set(&self, set: TokenSet) {
        if let Ok(mut cur) = self.current.write() {
            *cur = Arc::new(set);
        }
    }

    /// Re-read the file (called by the watcher). Unchanged text does nothing; a file that
    /// cannot be read or parsed keeps the previous tokens and says so in the log. A file that
    /// no longer exists revokes every token (said once, not at every re-read): a Secret
    /// update swaps `..data` atomically, so the file is never missing in passing, and a
    /// deleted Secret or key is taken to mean "no more access" rather than "keep the old".
    pub fn reload(&self) {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.gone(),
            Err(e) => return self.failed(format!("cannot read: {e}")),
        };
        if let Ok(mut last) = self.last_text.lock() {
            if last.as_deref() == Some(text.as_str()) {
                return;
            }
            *last = Some(text.clone());
        }
        match TokenSet::parse(&text) {
            Ok(set) => {
                let n = set.len();
                set.warn_node_wide(&self.path);
                self.set(set);
                if let Ok(mut st) = self.state.lock() {
                    st.loads += 1;
                    st.last_error = None;
                    st.missing = false;
                }
                tracing::info!(path = %self.path.display(), tokens = n, "http: tokens file reloaded");
            }
            Err(e) => self.failed(e),
        }
    }

    fn gone(&self) {
        let was_missing = match self.state.lock() {
            Ok(mut st) => {
                st.last_error = None;
                std::mem::replace(&mut st.missing, true)
            }
            Err(_) => return,
        };
        if was_missing {
            return;
        }
        let revoked = self.current().len();
        self.set(TokenSet::default());
        if let Ok(mut last) = self.last_text.lock() {
            *last = None;
        }
        tracing::warn!(
            path = %self.path.display(),
            revoked_tokens = revoked,
            "http: tokens file was removed; every token is revoked until it appears again"
        );
    }

    fn failed(&self, e: String) {
        let kept = self.current().len();
        if let Ok(mut st) = self.state.lock() {
            st.errors += 1;
            st.last_error = Some(e.clone());
        }
        tracing::error!(
            path = %self.path.display(),
            error = %e,
            kept_tokens = kept,
            "http: tokens file is broken; keeping the previous tokens"
        );
    }

    /// Append the reload gauges and counters to a Prometheus page.
    pub fn render(&self, out: &mut String) {
        let st = self.state();
        let n = self.current().len();
        out.push_str(&format!(
            "# HELP runnel_http_tokens Bearer tokens in force.\n# TYPE runnel_http_tokens gauge\n\
             runnel_http_tokens {n}\n\
             # HELP runnel_http_tokens_reload_errors_total Tokens-file reloads that failed (the previous tokens were kept).\n\
             # TYPE runnel_http_tokens_reload_errors_total counter\n\
             runnel_http_tokens_reload_errors_total {}\n\
             # HELP runnel_http_tokens_file_missing 1 while http.auth.tokens_file does not exist (no token is valid).\n\
             # TYPE runnel_http_tokens_file_missing gauge\n\
             runnel_http_tokens_file_missing {}\n",
            st.errors,
            u8::from(st.missing)
        ));
    }
}

/// Tokens from a file (if configured) and the anonymous policy.
pub struct TokenAuthorizer {
    anonymous: Anonymous,
    tokens: Option<Arc<TokensFile>>,
}

impl TokenAuthorizer {
    /// An authorizer over `tokens` (None: no token is valid) with an anonymous policy.
    pub fn new(anonymous: Anonymous, tokens: Option<Arc<TokensFile>>) -> TokenAuthorizer {
        TokenAuthorizer { anonymous, tokens }
    }
}

fn bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at(header.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

impl Authorizer for TokenAuthorizer {
    fn decide<'a>(&'a self, req: &'a RequestMeta<'a>) -> DecideFuture<'a> {
        Box::pin(std::future::ready(self.decide_now(req)))
    }
}

impl TokenAuthorizer {
    /// The decision, at once (nothing here waits): the anonymous policy for a caller without
    /// a credential, else the token's entry. The request's attributes beyond the caller do
    /// not matter to a static token: its rights and namespaces are checked after.
    pub fn decide_now(&self, meta: &RequestMeta<'_>) -> Result<Decision, Unauthenticated> {
        let Some(header) = meta.authorization else {
            let admitted = match self.anonymous {
                Anonymous::All => true,
                Anonymous::Loopback => is_loopback(&meta.peer),
                Anonymous::None => false,
            };
            return if admitted {
                Ok(Decision::anonymous())
            } else {
                Err(Unauthenticated("no token".into()))
            };
        };
        if header.len() > MAX_AUTHORIZATION_BYTES {
            return Err(Unauthenticated("Authorization header too long".into()));
        }
        let token = bearer(header).ok_or_else(|| {
            Unauthenticated("the Authorization header is not \"Bearer <token>\"".into())
        })?;
        let set = self
            .tokens
            .as_ref()
            .map(|t| t.current())
            .unwrap_or_default();
        match set.find(token) {
            Some(e) => Ok(Decision {
                who: e.name.clone(),
                anonymous: false,
                rights: e.rights.clone(),
                namespaces: e.namespaces.clone(),
            }),
            None => Err(Unauthenticated("unknown or revoked token".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: [u8; 32]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn file(entries: &[(&str, &str, &str, &str)]) -> String {
        let mut s = String::from("tokens:\n");
        for (name, token, ns, rights) in entries {
            s.push_str(&format!(
                "  - {{ name: {name}, token_sha256: \"{}\", namespaces: {ns}, rights: {rights} }}\n",
                hex(sha256(token.as_bytes()))
            ));
        }
        s
    }

    static GET: hyper::Method = hyper::Method::GET;

    fn meta<'a>(peer: &str, auth: Option<&'a str>) -> RequestMeta<'a> {
        RequestMeta::new(
            peer.parse().unwrap(),
            auth.map(str::as_bytes),
            &GET,
            "/v1/sources",
            "",
        )
    }

    #[test]
    fn sha256_matches_the_known_vector() {
        // FIPS 180-2 test vector for "abc".
        assert_eq!(
            hex(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn tokens_map_to_names_rights_and_namespaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        std::fs::write(
            &path,
            file(&[
                ("shop-team", "s3cret-shop", "[shop]", "[read]"),
                (
                    "platform",
                    "s3cret-platform",
                    "[\"*\"]",
                    "[read, ingest, metrics]",
                ),
            ]),
        )
        .unwrap();
        let tokens = Arc::new(TokensFile::load(&path).unwrap());
        let a = TokenAuthorizer::new(Anonymous::None, Some(tokens));
        let d = a
            .decide_now(&meta("10.0.0.1:1", Some("Bearer s3cret-shop")))
            .unwrap();
        assert_eq!(d.who, "shop-team");
        assert!(d.namespaces.allows(Some("shop")) && !d.namespaces.allows(Some("kube-system")));
        let d = a
            .decide_now(&meta("10.0.0.1:1", Some("bearer  s3cret-platform ")))
            .unwrap();
        assert!(d.namespaces.is_all() && d.rights.contains(&Right::Ingest));
        for bad in ["Bearer nope", "Basic czNjcmV0", "Bearer", "s3cret-shop"] {
            assert!(
                a.decide_now(&meta("10.0.0.1:1", Some(bad))).is_err(),
                "{bad}"
            );
        }
        let e = a.decide_now(&meta("127.0.0.1:1", None)).unwrap_err();
        assert_eq!(e.0, "no token");
    }

    #[test]
    fn anonymous_policy_decides_callers_without_a_token() {
        let lo = TokenAuthorizer::new(Anonymous::Loopback, None);
        assert!(lo.decide_now(&meta("127.0.0.1:1", None)).unwrap().anonymous);
        assert!(lo.decide_now(&meta("10.0.0.1:1", None)).is_err());
        // A token that is presented is checked even from loopback.
        assert!(lo
            .decide_now(&meta("127.0.0.1:1", Some("Bearer x")))
            .is_err());
        let all = TokenAuthorizer::new(Anonymous::All, None);
        assert!(all.decide_now(&meta("10.0.0.1:1", None)).is_ok());
    }

    #[test]
    fn bad_files_name_the_entry() {
        for (text, want) in [
            ("tokens:\n  - { name: a, token_sha256: abc, namespaces: [x], rights: [read] }\n", "64 hex"),
            ("tokens: [{ name: a, token_sha256: \"0000000000000000000000000000000000000000000000000000000000000000\", namespaces: [x], rights: [write] }]\n", "unknown right \"write\""),
            ("tokens: [{ name: a, token_sha256: \"0000000000000000000000000000000000000000000000000000000000000000\", namespaces: [], rights: [read] }]\n", "namespaces must list"),
            ("tokens: [{ name: a, token: x }]\n", "unknown field"),
            ("tokens: [\n", "while parsing"),
        ] {
            let e = TokenSet::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        let scoped = file(&[
            ("ops", "t1", "[\"*\"]", "[metrics]"),
            ("team", "t2", "[shop]", "[read, metrics]"),
            ("reader", "t3", "[shop]", "[read]"),
        ]);
        assert_eq!(
            TokenSet::parse(&scoped).unwrap().scoped_metrics_tokens(),
            ["team"]
        );
        let dup = file(&[("a", "t", "[x]", "[read]"), ("b", "t", "[y]", "[read]")]);
        assert!(TokenSet::parse(&dup).unwrap_err().contains("listed twice"));
    }

    #[test]
    fn a_broken_reload_keeps_the_previous_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        std::fs::write(&path, file(&[("a", "one", "[x]", "[read]")])).unwrap();
        let f = TokensFile::load(&path).unwrap();
        std::fs::write(&path, "tokens: [ {").unwrap();
        f.reload();
        assert!(f.current().find(b"one").is_some());
        let st = f.state();
        assert_eq!(st.errors, 1);
        assert!(st.last_error.is_some());
        std::fs::write(&path, file(&[("b", "two", "[x]", "[read]")])).unwrap();
        f.reload();
        assert!(f.current().find(b"one").is_none());
        assert_eq!(f.current().find(b"two").map(|e| e.name.as_str()), Some("b"));
        assert!(f.state().last_error.is_none());
    }

    #[test]
    fn a_missing_file_means_no_tokens_until_it_appears_and_removing_it_revokes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.yaml");
        let f = TokensFile::load(&path).unwrap();
        assert!(f.current().is_empty());
        assert!(f.state().missing);
        f.reload();
        assert!(f.state().missing && f.state().errors == 0);
        std::fs::write(&path, file(&[("a", "one", "[x]", "[read]")])).unwrap();
        f.reload();
        assert!(f.current().find(b"one").is_some());
        assert!(!f.state().missing);
        std::fs::remove_file(&path).unwrap();
        f.reload();
        assert!(f.current().find(b"one").is_none());
        assert!(f.state().missing);
        // The same text again is a change after a removal.
        std::fs::write(&path, file(&[("a", "one", "[x]", "[read]")])).unwrap();
        f.reload();
        assert!(f.current().find(b"one").is_some());
    }
}
