//! SASL on the Kafka listener (KIP-152): SaslHandshake picks a mechanism,
//! SaslAuthenticate carries its messages — SCRAM-SHA-256/512 (the exchange
//! runs against the users in the cluster metadata) or PLAIN (a password,
//! checked against the same credentials; offered only over TLS unless the
//! operator allowed it). Until a connection has authenticated it may only
//! ask ApiVersions, SaslHandshake and SaslAuthenticate; anything else, or a
//! failed authentication (after its error answer), closes it.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use strata_auth::{Mechanism, ScramCredential, ScramServer, Step};

use crate::service::BrokerService;

/// Looks a user's credential up for one mechanism.
type Lookup = Box<dyn Fn(&str) -> Option<ScramCredential> + Send + Sync>;

/// A SASL mechanism the listener may offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// A SCRAM exchange.
    Scram(Mechanism),
    /// A password in the clear (RFC 4616).
    Plain,
}

impl SaslMechanism {
    /// Parses a SASL mechanism name (`SCRAM-SHA-512`, `PLAIN`).
    pub fn parse(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("PLAIN") {
            return Some(SaslMechanism::Plain);
        }
        Mechanism::parse(name).ok().map(SaslMechanism::Scram)
    }

    /// Its SASL name.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Scram(m) => m.name(),
            SaslMechanism::Plain => "PLAIN",
        }
    }
}

enum State {
    /// SASL is not required on this listener.
    Open,
    /// Waiting for SaslHandshake.
    Start,
    /// Handshaken: the next SaslAuthenticate starts the mechanism.
    Chosen(SaslMechanism),
    /// In a SCRAM exchange.
    Scram(Box<ScramServer<Lookup>>),
    /// Authenticated as this user.
    Done(String),
    /// Authentication failed: the connection closes after the answer.
    Failed,
}

/// One connection's authentication state.
pub(crate) struct SaslSession {
    core: Arc<BrokerService>,
    state: State,
    /// After a SaslHandshake v0 the mechanism's messages travel as raw
    /// size-prefixed frames, not inside SaslAuthenticate (pre-KIP-152
    /// clients; librdkafka requires v0 to be advertised).
    raw: bool,
}

impl SaslSession {
    /// A session for a connection to `core`'s listener.
    pub(crate) fn new(core: Arc<BrokerService>) -> Self {
        let state = if core.config.sasl_mechanisms.is_empty() { State::Open } else { State::Start };
        SaslSession { core, state, raw: false }
    }

    /// Whether a request for `api` may be served now.
    pub(crate) fn may_serve(&self, api: ApiKey) -> bool {
        matches!(self.state, State::Open | State::Done(_))
            || matches!(api, ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)
    }

    /// Whether the connection must close (after the answer just sent).
    pub(crate) fn failed(&self) -> bool {
        matches!(self.state, State::Failed)
    }

    /// The authenticated user, if any.
    pub(crate) fn user(&self) -> Option<&str> {
        match &self.state {
            State::Done(u) => Some(u),
            _ => None,
        }
    }

    fn offered(&self) -> Vec<StrBytes> {
        self.core.config.sasl_mechanisms.iter().map(|m| StrBytes::from_static_str(m.name())).collect()
    }

    /// Whether the next frame is a raw SASL token (after a v0 handshake).
    pub(crate) fn expects_raw_token(&self) -> bool {
        self.raw && matches!(self.state, State::Chosen(_) | State::Scram(_))
    }

    /// A raw token after a v0 handshake: the raw answer (`None`: failed,
    /// close the connection, as Kafka does in this flow).
    pub(crate) async fn raw_token(&mut self, token: &[u8]) -> Option<bytes::Bytes> {
        let mut req = SaslAuthenticateRequest::default();
        req.auth_bytes = bytes::Bytes::copy_from_slice(token);
        let r = self.authenticate(&req).await;
        (r.error_code == 0).then_some(r.auth_bytes)
    }

    /// SaslHandshake: the client names a mechanism.
    pub(crate) fn handshake(&mut self, req: &SaslHandshakeRequest, version: i16) -> SaslHandshakeResponse {
        let mut r = SaslHandshakeResponse::default();
        r.mechanisms = self.offered();
        let wanted = SaslMechanism::parse(&req.mechanism);
        match (&self.state, wanted) {
            (State::Start, Some(m)) if self.core.config.sasl_mechanisms.contains(&m) => {
                self.state = State::Chosen(m);
                self.raw = version == 0;
            }
            (State::Start, _) | (State::Open, _) => r.error_code = ResponseError::UnsupportedSaslMechanism.code(),
            _ => r.error_code = ResponseError::IllegalSaslState.code(),
        }
        r
    }

    /// SaslAuthenticate: one message of the chosen mechanism.
    pub(crate) async fn authenticate(&mut self, req: &SaslAuthenticateRequest) -> SaslAuthenticateResponse {
        let mut r = SaslAuthenticateResponse::default();
        let fail = |r: &mut SaslAuthenticateResponse, code: ResponseError, message: String| {
            r.error_code = code.code();
            r.error_message = Some(StrBytes::from_string(message));
        };
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Chosen(SaslMechanism::Plain) => match strata_auth::plain::parse(&req.auth_bytes) {
                Ok(c) => {
                    if self.core.check_password(&c.user, &c.password).await {
                        tracing::debug!(user = %c.user, mechanism = "PLAIN", "Kafka client authenticated");
                        self.state = State::Done(c.user);
                    } else {
                        tracing::info!(user = %c.user, mechanism = "PLAIN", "Kafka client failed to authenticate");
                        fail(
                            &mut r,
                            ResponseError::SaslAuthenticationFailed,
                            strata_auth::AuthError::InvalidCredentials.to_string(),
                        );
                    }
                }
                Err(e) => fail(&mut r, ResponseError::SaslAuthenticationFailed, e.to_string()),
            },
            State::Chosen(SaslMechanism::Scram(m)) => {
                let core = self.core.clone();
                let lookup: Lookup = Box::new(move |user: &str| core.scram_credential(user, m));
                self.scram_step(Box::new(ScramServer::new(m, lookup)), &req.auth_bytes, &mut r);
            }
            State::Scram(server) => self.scram_step(server, &req.auth_bytes, &mut r),
            State::Open => {
                self.state = State::Open;
                fail(&mut r, ResponseError::IllegalSaslState, "this listener does not use SASL".into());
            }
            _ => fail(&mut r, ResponseError::IllegalSaslState, "SaslAuthenticate before SaslHandshake".into()),
        }
        r
    }

    fn scram_step(&mut self, mut server: Box<ScramServer<Lookup>>, message: &[u8], r: &mut SaslAuthenticateResponse) {
        match server.step(message) {
            Ok(Step::Continue(reply)) => {
                r.auth_bytes = reply.into();
                self.state = State::Scram(server);
            }
            Ok(Step::Done { user, message }) => {
                tracing::debug!(%user, "Kafka client authenticated with SCRAM");
                r.auth_bytes = message.into();
                self.state = State::Done(user);
            }
            Err(e) => {
                tracing::info!(error = %e, "Kafka client failed to authenticate with SCRAM");
                r.error_code = ResponseError::SaslAuthenticationFailed.code();
                r.error_message = Some(StrBytes::from_string(e.to_string()));
                self.state = State::Failed;
            }
        }
    }
}
