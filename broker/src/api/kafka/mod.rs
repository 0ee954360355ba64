//! The Kafka protocol edge: existing Kafka clients and tools (librdkafka,
//! kafka-python, Java …) produce to and fetch from Strata over Kafka's own
//! wire protocol. A TCP listener beside the gRPC edge; each connection
//! decodes Kafka frames, calls the broker core in process and encodes the
//! answers, one request at a time and in order (as a Kafka broker does).
//!
//! One handler per API (`handlers/`); the versions advertised are exactly
//! the ones implemented and tested (`versions.rs`).

mod codes;
mod connection;
mod fetch_response;
mod frame;
mod handlers;
mod listener;
mod sasl;
mod versions;

pub use listener::serve;
pub use sasl::SaslMechanism;
