//! # strata-controller
//!
//! Owns the controller quorum that replaces ZooKeeper: a raft-rs `RawNode` on
//! each controller voter and the replicated cluster-metadata state machine
//! (brokers, topics, partitions with replicas, ISR, leader and leader epoch).
//! It elects partition leaders and fences brokers that miss their session.
//!
//! It must never touch partition data (that is `strata-storage` and
//! `strata-broker`), never decode Raft messages that came from clients rather
//! than controller peers, and never acknowledge a metadata change before it is
//! committed by a quorum.
//!
//! Status: the quorum lands with the controller issue; this crate currently
//! holds no code so that no placeholder behaviour can be mistaken for it.
