//! SASL PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd`, checked
//! against the user's SCRAM credential. The password crosses the wire, so
//! servers offer PLAIN only over TLS unless told otherwise.

use crate::AuthError;

/// A PLAIN message's user and password.
#[derive(PartialEq, Eq)]
pub struct PlainCredentials {
    /// The user (authcid).
    pub user: String,
    /// The password.
    pub password: String,
}

/// Never prints the password.
impl std::fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainCredentials").field("user", &self.user).finish_non_exhaustive()
    }
}

fn malformed(reason: &str) -> AuthError {
    AuthError::Malformed { mechanism: "PLAIN", reason: reason.into() }
}

/// Parses a PLAIN message. An authorization id, if given, must be the user
/// itself (acting as another user is not supported).
pub fn parse(message: &[u8]) -> Result<PlainCredentials, AuthError> {
    let text = std::str::from_utf8(message).map_err(|_| malformed("not UTF-8"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("expected authzid NUL user NUL password"));
    };
    if user.is_empty() || password.is_empty() {
        return Err(malformed("empty user or password"));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(malformed("acting as another user (authzid) is not supported"));
    }
    Ok(PlainCredentials { user: user.to_string(), password: password.to_string() })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

    use super::*;

    #[test]
    fn plain_messages_parse_and_malformed_ones_are_refused() {
        let c = parse(b"\0alice\0s3cret").unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("alice", "s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"), "the password is never printed");
        assert_eq!(parse(b"alice\0alice\0pw").unwrap().user, "alice");
        for bad in
            [&b""[..], b"alice", b"\0alice", b"\0\0pw", b"\0alice\0", b"bob\0alice\0pw", b"\0a\0b\0c", b"\0\xff\0pw"]
        {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
