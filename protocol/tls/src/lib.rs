//! # strata-tls
//!
//! TLS for Strata's listeners (client gRPC, Kafka, HTTP, controller Raft)
//! and for the connections nodes and clients open, with rustls (no
//! OpenSSL):
//!
//! - [`TlsFiles`] names the PEM certificate chain, private key and CA
//!   bundle a node or client uses.
//! - [`ServerTls`] serves them and reloads them when the files change
//!   (cert-manager rotates them in place), without a restart and without
//!   touching established connections: each new handshake takes the
//!   configuration current at that moment.
//! - [`TlsIncoming`] turns a `TcpListener` into a stream of accepted TLS
//!   connections, each handshake on its own task and bounded by a timeout,
//!   so a client that stops mid-handshake never wedges the listener.
//!   [`TlsConn`] carries the peer's address and certificate chain to the
//!   edges (tonic's `Connected`).
//! - [`ClientTls`] is the other side: trust a CA (or the public roots),
//!   optionally present a certificate (mutual TLS between nodes).
//! - [`channel`] opens a lazily connected gRPC channel over TLS (tonic
//!   with a [`Connector`] doing TCP + the handshake), for node links and
//!   clients.
//! - [`identity`] reads who a certificate names (SAN DNS names, common
//!   name), for mapping node certificates to node ids and clients to
//!   principals.

mod client;
mod error;
mod files;
#[cfg(any(test, feature = "generate"))]
pub mod generate;
mod grpc;
pub mod identity;
mod incoming;
mod probe;
mod server;
#[cfg(test)]
mod tests;

pub use client::ClientTls;
pub use error::TlsError;
pub use files::TlsFiles;
pub use grpc::{channel, connect_channel, Connector};
pub use incoming::{calling_node, TlsConn, TlsConnectInfo, TlsIncoming, HANDSHAKE_TIMEOUT};
pub use probe::speaks_tls;
pub use server::ServerTls;
pub use tokio_rustls::{client::TlsStream as ClientTlsStream, server::TlsStream as ServerTlsStream};

/// The certificate chain a peer presented, leaf first (DER).
pub type PeerCertificates = std::sync::Arc<Vec<rustls_pki_types::CertificateDer<'static>>>;
