//! [`MetadataFollower`]: keeps a broker-only node's metadata image current by
//! long-polling a voter for the commands applied after its offset and
//! applying them to its own copy of the deterministic state machine
//! (or replacing the image with a snapshot when it is too far behind).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::ControllerClient;
use crate::controller::MetadataDelta;
use crate::metadata::{MetadataCommand, MetadataImage};

/// How long one fetch waits on the voter for something new.
const LONG_POLL: Duration = Duration::from_secs(5);
/// Pause after a failed fetch before trying another voter.
const ERROR_PAUSE: Duration = Duration::from_millis(200);

/// Follows the controller's metadata from outside the quorum.
#[derive(Debug)]
pub struct MetadataFollower {
    client: ControllerClient,
    image: Arc<MetadataImage>,
    tx: watch::Sender<Arc<MetadataImage>>,
}

impl MetadataFollower {
    /// A follower starting from an empty image; subscribe before running it.
    pub fn new(client: ControllerClient) -> Self {
        let image = Arc::new(MetadataImage::default());
        let (tx, _) = watch::channel(image.clone());
        MetadataFollower { client, image, tx }
    }

    /// Every image this follower publishes (possibly skipping some).
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.tx.subscribe()
    }

    /// Applies one fetched delta to the image; returns true if it changed.
    /// Commands the state machine rejects change nothing here, exactly as on
    /// the voters; a command that does not decode stops at an error (the
    /// voters hold only what they could decode, so it means a bad peer).
    pub fn apply(&mut self, delta: MetadataDelta) -> Result<bool, crate::metadata::MetadataError> {
        match delta {
            MetadataDelta::Snapshot(image) => {
                let changed = *image != *self.image;
                self.image = image;
                Ok(changed)
            }
            MetadataDelta::Entries { entries, offset } => {
                if entries.is_empty() && offset == self.image.offset {
                    return Ok(false);
                }
                let mut next = (*self.image).clone();
                for (at, bytes) in &entries {
                    let cmd = MetadataCommand::decode(bytes)?;
                    if let Err(e) = next.apply(&cmd) {
                        tracing::debug!(offset = at, error = %strata_record::ErrorChain(&e), "metadata command rejected (as on the controller)");
                    }
                    next.offset = *at;
                }
                next.offset = offset;
                self.image = Arc::new(next);
                Ok(true)
            }
        }
    }

    /// The image as of the last applied delta.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.clone()
    }

    /// Fetches once from the best voter and applies the result; returns true
    /// when the image moved. Prefers the leader a voter names, so a broker
    /// never stays behind a partitioned, stale voter.
    pub async fn poll_once(&mut self, max_wait: Duration) -> Result<bool, crate::ControllerError> {
        let voter = self.client.pick_voter();
        match self.client.fetch_metadata(voter, self.image.offset, max_wait).await {
            Ok((delta, leader)) => {
                match leader {
                    Some(l) => self.client.hint_leader(Some(l)),
                    // The voter knows no leader: it may be cut off; try another next time.
                    None => {
                        self.client.rotate();
                    }
                }
                let changed = self.apply(delta)?;
                if changed {
                    self.tx.send_replace(self.image.clone());
                }
                Ok(changed)
            }
            Err(e) => {
                self.client.rotate();
                Err(e)
            }
        }
    }

    /// Follows until `stop` is cancelled.
    pub async fn run(mut self, stop: tokio_util::sync::CancellationToken) {
        loop {
            if stop.is_cancelled() {
                return;
            }
            tokio::select! {
                result = self.poll_once(LONG_POLL) => {
                    if let Err(e) = result {
                        tracing::warn!(error = %strata_record::ErrorChain(&e), "fetching metadata from the controller failed; trying another voter");
                        tokio::select! {
                            _ = tokio::time::sleep(ERROR_PAUSE) => {}
                            _ = stop.cancelled() => return,
                        }
                    }
                }
                _ = stop.cancelled() => return,
            }
        }
    }
}
