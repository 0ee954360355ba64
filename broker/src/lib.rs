//! # strata-broker
//!
//! Owns the broker: partition leaders and followers over `strata-storage`
//! logs, replication (ISR, high watermark, leader epochs), produce and fetch
//! handling, consumer-group offsets, and the `strata-server` binary.
//!
//! It must never acknowledge a produce before the durability the producer
//! asked for (acks and the log's flush policy) is met, never serve records
//! above the high watermark to consumers, and never write a batch to a log
//! before validating it.
//!
//! Status: the gRPC service and `strata-server` land with the single-node
//! issue; this crate currently holds no code.
