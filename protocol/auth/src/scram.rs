//! The server side of a SCRAM exchange (RFC 5802 §5), as Kafka's
//! SaslAuthenticate carries it: client-first → server-first → client-final
//! → server-final. No channel binding (`n,,`), as Kafka's clients send.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::{AuthError, Mechanism, ScramCredential};

/// Longest client message accepted (a SCRAM message is a few hundred bytes).
const MAX_MESSAGE: usize = 4096;

/// What the server says next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this and wait for the client's next message.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send `message` (the server-final message).
    Done {
        /// Who the client is.
        user: String,
        /// The server-final message, proving the server knew the credential.
        message: Vec<u8>,
    },
}

/// One exchange. `lookup` finds a user's credential for the mechanism.
pub struct ScramServer<L> {
    mechanism: Mechanism,
    lookup: L,
    state: State,
    nonce: Option<String>,
}

enum State {
    First,
    Final { user: String, credential: ScramCredential, client_first_bare: String, server_first: String, nonce: String },
    Ended,
}

impl<L> std::fmt::Debug for ScramServer<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramServer").field("mechanism", &self.mechanism).finish_non_exhaustive()
    }
}

fn malformed(mechanism: Mechanism, reason: impl Into<String>) -> AuthError {
    AuthError::Malformed { mechanism: mechanism.name(), reason: reason.into() }
}

/// Undoes SCRAM's `saslname` escaping (`=2C` is `,`, `=3D` is `=`).
fn unescape(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

impl<L: Fn(&str) -> Option<ScramCredential>> ScramServer<L> {
    /// An exchange for `mechanism`, looking users up with `lookup`.
    pub fn new(mechanism: Mechanism, lookup: L) -> Self {
        ScramServer { mechanism, lookup, state: State::First, nonce: None }
    }

    /// Uses `nonce` as the server's nonce part (tests with RFC vectors).
    pub fn with_server_nonce(mut self, nonce: &str) -> Self {
        self.nonce = Some(nonce.to_string());
        self
    }

    /// Takes the client's next message; after an error the exchange is over.
    pub fn step(&mut self, message: &[u8]) -> Result<Step, AuthError> {
        let state = std::mem::replace(&mut self.state, State::Ended);
        if message.len() > MAX_MESSAGE {
            return Err(malformed(self.mechanism, format!("message of {} bytes", message.len())));
        }
        let text = std::str::from_utf8(message).map_err(|_| malformed(self.mechanism, "not UTF-8"))?;
        match state {
            State::First => self.first(text),
            State::Final { user, credential, client_first_bare, server_first, nonce } => {
                self.last(text, user, &credential, &client_first_bare, &server_first, &nonce)
            }
            State::Ended => Err(malformed(self.mechanism, "the exchange is over")),
        }
    }

    fn first(&mut self, text: &str) -> Result<Step, AuthError> {
        let m = self.mechanism;
        // gs2-header: "n,," (no channel binding) or "y,,"; an authzid
        // ("a=...") must name the user itself.
        let (gs2, bare) = match text.strip_prefix("n,").or_else(|| text.strip_prefix("y,")) {
            Some(rest) => match rest.split_once(',') {
                Some((authzid, bare)) => (authzid, bare),
                None => return Err(malformed(m, "no client-first-message-bare")),
            },
            None if text.starts_with("p=") => return Err(malformed(m, "channel binding is not supported")),
            None => return Err(malformed(m, "expected a gs2 header \"n,,\"")),
        };
        let mut user = None;
        let mut client_nonce = None;
        for attr in bare.split(',') {
            match attr.split_once('=') {
                Some(("n", v)) => user = Some(unescape(v).ok_or_else(|| malformed(m, "bad user name escape"))?),
                Some(("r", v)) => client_nonce = Some(v.to_string()),
                Some(("m", _)) => return Err(malformed(m, "mandatory extensions are not supported")),
                _ => {} // extensions (Kafka's tokenauth) are ignored
            }
        }
        let (Some(user), Some(client_nonce)) = (user, client_nonce) else {
            return Err(malformed(m, "client-first message needs n= and r="));
        };
        if client_nonce.is_empty() || user.is_empty() {
            return Err(malformed(m, "empty user or nonce"));
        }
        if let Some(authzid) = gs2.strip_prefix("a=") {
            if unescape(authzid).as_deref() != Some(user.as_str()) {
                return Err(malformed(m, "acting as another user (authzid) is not supported"));
            }
        }
        let credential = (self.lookup)(&user).filter(|c| c.mechanism == m).ok_or(AuthError::InvalidCredentials)?;
        let server_part = match self.nonce.take() {
            Some(n) => n,
            None => {
                let mut raw = [0u8; 18];
                SystemRandom::new().fill(&mut raw).map_err(|_| AuthError::InvalidCredentials)?;
                B64.encode(raw)
            }
        };
        let nonce = format!("{client_nonce}{server_part}");
        let server_first = format!("r={nonce},s={},i={}", B64.encode(&credential.salt), credential.iterations);
        self.state = State::Final {
            user,
            credential,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok(Step::Continue(server_first.into_bytes()))
    }

    fn last(
        &mut self,
        text: &str,
        user: String,
        credential: &ScramCredential,
        client_first_bare: &str,
        server_first: &str,
        nonce: &str,
    ) -> Result<Step, AuthError> {
        let m = self.mechanism;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(|| malformed(m, "no proof (p=)"))?;
        let mut channel = None;
        let mut got_nonce = None;
        for attr in without_proof.split(',') {
            match attr.split_once('=') {
                Some(("c", v)) => channel = Some(v),
                Some(("r", v)) => got_nonce = Some(v),
                _ => {}
            }
        }
        if !matches!(channel, Some("biws") | Some("eSws")) {
            return Err(malformed(m, "channel binding must be absent (c=biws)"));
        }
        // RFC 5802 wants the nonce echoed exactly; librdkafka sends its own
        // nonce again in front of it, and Kafka accepts any nonce that ends
        // with the server's (which still proves this exchange's nonce).
        if !got_nonce.is_some_and(|g| g.ends_with(nonce)) {
            return Err(malformed(m, "the nonce is not the one this exchange uses"));
        }
        let proof = B64.decode(proof).map_err(|_| malformed(m, "the proof is not base64"))?;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = m.hmac_of(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(AuthError::InvalidCredentials);
        }
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(a, b)| a ^ b).collect();
        verify_slices_are_equal(&m.h(&client_key), &credential.stored_key)
            .map_err(|_| AuthError::InvalidCredentials)?;
        let server_signature = m.hmac_of(&credential.server_key, auth_message.as_bytes());
        Ok(Step::Done { user, message: format!("v={}", B64.encode(server_signature)).into_bytes() })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

    use super::*;

    /// RFC 7677 §3: user "user", password "pencil", 4096 iterations.
    #[test]
    fn rfc_7677_scram_sha_256_example() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = ScramCredential::derive(Mechanism::ScramSha256, "pencil", &salt, 4096).unwrap();
        let lookup = |u: &str| (u == "user").then(|| cred.clone());
        let mut server =
            ScramServer::new(Mechanism::ScramSha256, lookup).with_server_nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        let Step::Continue(first) = server.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap() else { panic!() };
        assert_eq!(
            first,
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".to_vec()
        );
        let last = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let Step::Done { user, message } = server.step(last).unwrap() else { panic!() };
        assert_eq!(user, "user");
        assert_eq!(message, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec());
    }

    #[test]
    fn a_wrong_proof_an_unknown_user_and_garbage_are_refused() {
        let cred = ScramCredential::new(Mechanism::ScramSha512, "secret", 4096).unwrap();
        assert!(cred.verify_password("secret") && !cred.verify_password("Secret"));
        assert!(!format!("{cred:?}").contains("stored_key"), "keys are never printed");
        let lookup = |u: &str| (u == "alice").then(|| cred.clone());
        let mut s = ScramServer::new(Mechanism::ScramSha512, lookup);
        assert_eq!(s.step(b"n,,n=bob,r=abc"), Err(AuthError::InvalidCredentials));
        let mut s = ScramServer::new(Mechanism::ScramSha512, lookup);
        s.step(b"n,,n=alice,r=abc").unwrap();
        let nonce = "abc"; // wrong: the server's part is missing
        assert!(matches!(s.step(format!("c=biws,r={nonce},p=AAAA").as_bytes()), Err(AuthError::Malformed { .. })));
        for garbage in [&b""[..], b"\xff\xfe", b"p=tls-unique,,n=a,r=b", b"n,,", b"n,,n=alice", &[b'x'; 5000][..]] {
            let mut s = ScramServer::new(Mechanism::ScramSha512, lookup);
            assert!(s.step(garbage).is_err(), "{garbage:?}");
            assert!(s.step(b"n,,n=alice,r=abc").is_err(), "an exchange that failed stays over");
        }
        assert_eq!(unescape("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(unescape("a=2"), None);
    }

    proptest::proptest! {
        /// Arbitrary client messages never panic, at either step.
        #[test]
        fn arbitrary_messages_never_panic(a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
                                          b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let cred = ScramCredential::derive(Mechanism::ScramSha256, "p", b"salt", 4096).unwrap();
            let mut s = ScramServer::new(Mechanism::ScramSha256, |_: &str| Some(cred.clone()));
            let _ = s.step(&a);
            let _ = s.step(&b);
        }
    }
}
