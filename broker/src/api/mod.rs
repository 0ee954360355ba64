//! The broker's edges: each decodes its wire format, calls the core in
//! process and encodes the answer, mapping the core's errors to its codes.

pub mod grpc;
pub mod kafka;
