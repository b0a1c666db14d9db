//! InitProducerId for idempotent producers: hands out a fresh producer id
//! with epoch 0 from the registry's persisted id blocks, or in a cluster
//! from blocks the quorum service hands this broker.
//!
//! Runs on the shard that received the request (no partition is involved;
//! the registry is shared behind its control-plane lock). Transactions are
//! not built: a request with a transactional id gets COORDINATOR_NOT_AVAILABLE,
//! since there is no transaction coordinator to find.
use super::RequestContext;
use crate::shard::Shard;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use std::rc::Rc;
use wire::ResponseError;

/// Kafka's `RecordBatch.NO_PRODUCER_ID` and `NO_PRODUCER_EPOCH`.
const NO_PRODUCER_ID: i64 = -1;
const NO_PRODUCER_EPOCH: i16 = -1;

pub async fn init_producer_id(
    shard: &Rc<Shard>,
    request: InitProducerIdRequest,
    _ctx: &RequestContext,
) -> InitProducerIdResponse {
    let allocated = match check(&request) {
        Err(code) => Err(code),
        Ok(()) if shard.replication().in_cluster() => {
            crate::replication::cluster_admin::allocate_producer_id(shard)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "cannot allocate a producer id");
                    super::metadata_error_code(&e)
                })
        }
        Ok(()) => allocate_locally(shard),
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

/// A new producer id from the local registry (a standalone broker).
fn allocate_locally(shard: &Shard) -> Result<i64, i16> {
    // Kafka's TransactionCoordinator.handleInitProducerId: without a
    // transactional id the broker has no record of the producer's id and
    // epoch to check, so it always answers a new id with epoch 0, also when
    // the client asks to bump the epoch of its current id (KIP-360). Bumping
    // an unchecked id would let any client fence any producer.
    shard.metadata.allocate_producer_id().map_err(|e| {
        tracing::error!(error = %e, "cannot allocate a producer id");
        super::metadata_error_code(&e)
    })
}
