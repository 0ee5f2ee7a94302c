//! The forward protocol's optional handshake: HELO (server) → PING (client) → PONG (server).
//!
//! ```text
//! HELO ["HELO", {"nonce": bin16, "auth": bin16 salt | "", "keepalive": true}]
//! PING ["PING", client_hostname, shared_key_salt, hex(sha512(salt + client_hostname + nonce
//!        + shared_key)), username | "", hex(sha512(auth_salt + username + password)) | ""]
//! PONG ["PONG", true, "", server_hostname, hex(sha512(salt + server_hostname + nonce
//!        + shared_key))]   or   ["PONG", false, reason, "", ""]
//! ```
//!
//! The digest inputs and their order are those of the Forward Protocol Specification v1 and
//! of Fluentd's in_forward (`check_ping`, `generate_pong`); hex digests are lower case, as
//! Ruby's `hexdigest` and Fluent Bit write them. Digests are compared in constant time.

use std::fmt;
use std::io::Read;

use sha2::{Digest, Sha512};

use super::msgpack::{read_exact, Value, Writer};

/// One username/password pair a client may authenticate with.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The username the client sends in PING.
    pub username: Vec<u8>,
    /// The password its digest is made with.
    pub password: Vec<u8>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("username", &String::from_utf8_lossy(&self.username))
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The server's side of the secret: its hostname, the shared key, and optional users.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerAuth {
    /// Sent in PONG and hashed into its digest (`self_hostname`).
    pub self_hostname: Vec<u8>,
    /// The shared key both sides know.
    pub shared_key: Vec<u8>,
    /// When not empty, PING must name one of these users with a matching password digest.
    pub users: Vec<User>,
}

impl fmt::Debug for ServerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerAuth")
            .field(
                "self_hostname",
                &String::from_utf8_lossy(&self.self_hostname),
            )
            .field("shared_key", &"<redacted>")
            .field("users", &self.users)
            .finish()
    }
}

/// A refused PING: the PONG to send before closing, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Stable metric label: `handshake_invalid` (not a PING) or `auth_failed`.
    pub reason: &'static str,
    /// For the log line (also the PONG's reason text).
    pub message: &'static str,
    /// `["PONG", false, message, "", ""]`: send it, then close the connection.
    pub pong: Vec<u8>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "forward handshake refused: {}", self.message)
    }
}

impl std::error::Error for Refusal {}

/// One connection's handshake: the nonce and user salt sent in HELO, kept to check PING.
///
/// The server sends [`Handshake::helo`] on accept, frames the client's first object and
/// passes it to [`Handshake::check_ping`]; `Ok(pong)` means send it and go on to events.
pub struct Handshake<'k> {
    auth: &'k ServerAuth,
    nonce: [u8; 16],
    user_salt: [u8; 16],
}

impl fmt::Debug for Handshake<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("auth", self.auth)
            .finish()
    }
}

impl<'k> Handshake<'k> {
    /// A handshake with a fresh random nonce and salt from the kernel (`/dev/urandom`).
    pub fn new(auth: &'k ServerAuth) -> std::io::Result<Self> {
        let mut random = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
        let mut nonce = [0u8; 16];
        let mut user_salt = [0u8; 16];
        nonce.copy_from_slice(&random[..16]);
        user_salt.copy_from_slice(&random[16..]);
        Ok(Self::with_nonce(auth, nonce, user_salt))
    }

    /// A handshake with a given nonce and salt (for tests and reproducible traces).
    pub fn with_nonce(auth: &'k ServerAuth, nonce: [u8; 16], user_salt: [u8; 16]) -> Self {
        Handshake {
            auth,
            nonce,
            user_salt,
        }
    }

    /// The nonce sent in HELO.
    pub fn nonce(&self) -> &[u8; 16] {
        &self.nonce
    }

    /// The user-auth salt sent in HELO (sent only when users are configured).
    pub fn user_salt(&self) -> &[u8; 16] {
        &self.user_salt
    }

    /// `["HELO", {"nonce": bin, "auth": salt | "", "keepalive": true}]`.
    pub fn helo(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let mut w = Writer(&mut out);
        w.array(2);
        w.str(b"HELO");
        w.map(3);
        w.str(b"nonce");
        w.bin(&self.nonce);
        w.str(b"auth");
        if self.auth.users.is_empty() {
            w.str(b"");
        } else {
            w.bin(&self.user_salt);
        }
        w.str(b"keepalive");
        w.bool(true);
        out
    }

    /// Checks a PING frame; `Ok` holds the success PONG to send.
    pub fn check_ping(&self, frame: &[u8]) -> Result<Vec<u8>, Refusal> {
        let refuse = |reason, message| Refusal {
            reason,
            message,
            pong: pong_failure(message),
        };
        let invalid = || refuse("handshake_invalid", "invalid ping message");
        let Ok(Ok(Value::Array(a))) = read_exact(frame) else {
            return Err(invalid());
        };
        if a.len() != 6 {
            return Err(invalid());
        }
        let mut f = [&[][..]; 6];
        for (slot, v) in f.iter_mut().zip(a.iter()) {
            *slot = v.as_bytes().ok_or_else(invalid)?;
        }
        let [kind, hostname, salt, key_digest, username, password_digest] = f;
        if kind != b"PING" {
            return Err(invalid());
        }
        let want = hex_sha512(&[salt, hostname, &self.nonce, &self.auth.shared_key]);
        if !ct_eq(&want, key_digest) {
            return Err(refuse("auth_failed", "shared_key mismatch"));
        }
        if !self.auth.users.is_empty() {
            let mut ok = false;
            for u in self.auth.users.iter().filter(|u| u.username == username) {
                let want = hex_sha512(&[&self.user_salt, username, &u.password]);
                ok |= ct_eq(&want, password_digest);
            }
            if !ok {
                return Err(refuse("auth_failed", "username/password mismatch"));
            }
        }
        let digest = hex_sha512(&[
            salt,
            &self.auth.self_hostname,
            &self.nonce,
            &self.auth.shared_key,
        ]);
        let mut out = Vec::with_capacity(160);
        let mut w = Writer(&mut out);
        w.array(5);
        w.str(b"PONG");
        w.bool(true);
        w.str(b"");
        w.str(&self.auth.self_hostname);
        w.str(&digest);
        Ok(out)
    }
}

fn pong_failure(reason: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    let mut w = Writer(&mut out);
    w.array(5);
    w.str(b"PONG");
    w.bool(false);
    w.str(reason.as_bytes());
    w.str(b"");
    w.str(b"");
    out
}

/// Lower-case hex SHA-512 of the concatenation of `parts`.
pub fn hex_sha512(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    let mut out = Vec::with_capacity(128);
    for b in h.finalize() {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Equality whose time does not depend on where the inputs differ (lengths are public).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}
