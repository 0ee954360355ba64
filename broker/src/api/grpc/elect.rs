//! `ElectLeaders` at the gRPC edge: the election type by name, the
//! partitions as topic lists, and each partition's result.

use strata_metadata::ElectionType;
use strata_protocol::v1;

use crate::error::{BrokerError, ErrorKind};
use crate::service::BrokerService;

/// `""` or `"preferred"` (the default) and `"unclean"`, in any case.
fn parse_election(s: &str) -> Result<ElectionType, BrokerError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "preferred" => Ok(ElectionType::Preferred),
        "unclean" => Ok(ElectionType::Unclean),
        other => Err(BrokerError::new(
            ErrorKind::InvalidRequest,
            format!("unknown election type '{other}': use 'preferred' or 'unclean'"),
        )),
    }
}

/// `ElectLeaders`: a partition without a leader is -1.
pub(crate) async fn elect_leaders(core: &BrokerService, req: v1::ElectLeadersRequest) -> v1::ElectLeadersResponse {
    let election = match parse_election(&req.election) {
        Ok(e) => e,
        Err(e) => {
            core.metrics.record_error(e.kind());
            return v1::ElectLeadersResponse { error: Some(e.into()), results: Vec::new() };
        }
    };
    let partitions = req.partitions.into_iter().map(|tp| (tp.topic, tp.partitions)).collect();
    match core.elect_leaders(election, partitions).await {
        Ok(results) => v1::ElectLeadersResponse {
            error: None,
            results: results
                .into_iter()
                .map(|r| v1::ElectionResult {
                    topic: r.tp.topic,
                    partition: r.tp.partition,
                    error: r.error.map(Into::into),
                    leader: r.leader.map_or(-1, |l| l as i32),
                })
                .collect(),
        },
        Err(e) => v1::ElectLeadersResponse { error: Some(e.into()), results: Vec::new() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn election_types() {
        assert_eq!(parse_election("").unwrap(), ElectionType::Preferred);
        assert_eq!(parse_election("Preferred").unwrap(), ElectionType::Preferred);
        assert_eq!(parse_election("unclean").unwrap(), ElectionType::Unclean);
        assert_eq!(parse_election("random").unwrap_err().kind(), ErrorKind::InvalidRequest);
    }
}
