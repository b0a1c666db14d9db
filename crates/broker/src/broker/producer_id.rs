//! InitProducerId for idempotent producers: hands out a fresh producer id
//! with epoch 0 from the registry's persisted id blocks, or in a cluster
//! from blocks the quorum service hands this broker.
//!
//! Runs on the shard that received the request (no partition is involved;
//! the registry is shared behind its control-plane lock). Transactions are
//! not built: a request with a transactional id gets COORDINATOR_NOT_AVAILABLE,
//! since there is no transaction coordinator to find.
use super::authz::RequestAuthorizer;
use super::RequestContext;
use crate::shard::Shard;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use model::acl::{AclOperation, ResourceType};
use std::rc::Rc;
use wire::ResponseError;

/// Kafka's `RecordBatch.NO_PRODUCER_ID` and `NO_PRODUCER_EPOCH`.
const NO_PRODUCER_ID: i64 = -1;
const NO_PRODUCER_EPOCH: i16 = -1;

pub async fn init_producer_id(
    shard: &Rc<Shard>,
    request: InitProducerIdRequest,
    ctx: &RequestContext,
) -> InitProducerIdResponse {
    // Kafka (KIP-679): IdempotentWrite on the cluster, or Write on any topic.
    let authorizer = RequestAuthorizer::of(shard, ctx);
    let authorized = authorizer.allows_cluster(AclOperation::IdempotentWrite)
        || authorizer.allows_some(AclOperation::Write, ResourceType::Topic);
    let allocated = match check(&request) {
        Err(code) => Err(code),
        Ok(()) if !authorized => Err(ResponseError::ClusterAuthorizationFailed.code()),
        Ok(()) => crate::replication::cluster_admin::allocate_producer_id(shard)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot allocate a producer id");
                super::metadata_error_code(&e)
            }),
    };
    match allocated {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(code) => InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(NO_PRODUCER_ID))
            .with_producer_epoch(NO_PRODUCER_EPOCH),
    }
}

/// Refuses what Kafka refuses before allocating.
fn check(request: &InitProducerIdRequest) -> Result<(), i16> {
    match &request.transactional_id {
        None => {}
        // Kafka's TransactionCoordinator.handleInitProducerId refuses an
        // empty transactional id as an invalid request.
        Some(id) if id.0.is_empty() => return Err(ResponseError::InvalidRequest.code()),
        Some(_) => return Err(ResponseError::CoordinatorNotAvailable.code()),
    }
    // Kafka's KafkaApis.handleInitProducerIdRequest: a producer id without
    // an epoch (or the reverse) is an invalid request (v3+, KIP-360).
    let id_given = request.producer_id.0 != NO_PRODUCER_ID;
    let epoch_given = request.producer_epoch != NO_PRODUCER_EPOCH;
    if id_given != epoch_given {
        return Err(ResponseError::InvalidRequest.code());
    }
    Ok(())
}
