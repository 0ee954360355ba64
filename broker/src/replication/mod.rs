//! Partition replication, Kafka-style (`docs/replication.md`): followers pull from
//! the leader ([`fetcher`]), the leader serves them and tracks their
//! progress ([`serve`], [`leader`]) — the fetch and its answer are
//! [`messages`] — and leaders keep the ISR current
//! through the controller ([`isr`]); replicas a reassignment adds are
//! served under the [`throttle`].

pub(crate) mod fetcher;
pub mod isr;
pub(crate) mod leader;
pub(crate) mod messages;
pub(crate) mod serve;
pub mod throttle;
