//! Produce: validate each partition's batch on the shard that owns the
//! partition, append, and answer once the flush policy for `acks` is met.
//! All batches for one shard travel in one job; their appends happen first
//! and their flushes after, so one write (and one fdatasync) covers them all.
//!
//! A batch from an idempotent producer that the partition already holds is
//! answered with error NONE and the original batch's base offset, once that
//! original is written, as Apache Kafka does (`UnifiedLog.append` returns
//! the duplicate's original `LogAppendInfo`).
//!
//! The topic's configs shape what is stored, as Kafka's `LogValidator`
//! shapes it: record timestamps are checked against
//! `message.timestamp.before.max.ms` and `after.max.ms` (CreateTime), a
//! LogAppendTime topic's batches get the broker's clock as their
//! `maxTimestamp` (answered as `log_append_time_ms`), and a batch whose codec
//! is not the topic's `compression.type` is recompressed. Otherwise the
//! batch is stored as sent.
//!
//! A batch refused for some of its records (records without a key for a
//! compacted topic) names them in `record_errors`, with the summary in
//! `error_message` (KIP-467, Produce v8+), in Kafka's words.
use super::authz::RequestAuthorizer;
use super::{owned_log, replication_error_code, RequestContext};
use crate::config::{ProduceSettings, TimestampType, TopicCompression};
use crate::metadata::is_internal_topic;
use crate::partition::{Acknowledgement, BatchToAppend, Partition, PendingWrite};
use crate::shard::Shard;
use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use model::acl::AclOperation;
use std::collections::BTreeMap;
use std::rc::Rc;
use storage::AppendOutcome;
use wire::batch::{
    stamp_batch, validate_producer_batch_for, BatchError, BatchHeader, KeylessRecords,
    RecordChecks, TimestampRule, ValidBatch,
};
use wire::recompress::{recompress, CodecLevels};
use wire::records::{decompressed_bytes_max, Codec};
use wire::ResponseError;

/// One partition's batch, on its way to the owning shard.
struct ProduceItem {
    slot: (usize, usize),
    topic: String,
    partition: i32,
    records: Option<Bytes>,
    /// Whether other partitions' batches share this one's request buffer.
    shares_request: bool,
}

/// What the owning shard answers for one partition.
#[derive(Debug, Clone)]
struct ProduceOutcome {
    error_code: i16,
    base_offset: i64,
    log_start_offset: i64,
    /// -1 unless the topic is LogAppendTime (or the batch a duplicate).
    log_append_time_ms: i64,
    /// The records refused for want of a key, when that refused the batch.
    keyless: Option<KeylessRecords>,
}

impl ProduceOutcome {
    fn error(code: i16) -> Self {
        ProduceOutcome {
            error_code: code,
            base_offset: -1,
            log_start_offset: -1,
            log_append_time_ms: -1,
            keyless: None,
        }
    }
}

impl From<i16> for ProduceOutcome {
    fn from(code: i16) -> Self {
        ProduceOutcome::error(code)
    }
}

pub async fn handle(
    shard: &Rc<Shard>,
    request: ProduceRequest,
    ctx: &RequestContext,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let timeout_ms = request.timeout_ms;
    let mut response = ProduceResponse::default();
    let mut by_shard: BTreeMap<usize, Vec<ProduceItem>> = BTreeMap::new();
    let authorizer = RequestAuthorizer::of(shard, ctx);
    for (t, topic) in request.topic_data.into_iter().enumerate() {
        let name = topic.name.0.to_string();
        let writable = authorizer.allows_topic(AclOperation::Write, &name);
        let mut topic_response = TopicProduceResponse::default().with_name(topic.name.clone());
        for (p, partition) in topic.partition_data.into_iter().enumerate() {
            topic_response.partition_responses.push(
                PartitionProduceResponse::default()
                    .with_index(partition.index)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1),
            );
            if !writable {
                let code = ResponseError::TopicAuthorizationFailed.code();
                topic_response.partition_responses[p].error_code = code;
                continue;
            }
            if is_internal_topic(&name) {
                // Kafka's ReplicaManager.appendToLocalLog: clients never
                // write internal topics; only the coordinator does.
                let code = ResponseError::InvalidTopicException.code();
                topic_response.partition_responses[p].error_code = code;
                continue;
            }
            let owner = shard.owner_of(&name, partition.index);
            by_shard.entry(owner).or_default().push(ProduceItem {
                slot: (t, p),
                topic: name.clone(),
                partition: partition.index,
                records: partition.records,
                shares_request: true,
            });
        }
        response.responses.push(topic_response);
    }
    let batches: usize = by_shard.values().map(Vec::len).sum();
    if batches == 1 {
        for item in by_shard.values_mut().flatten() {
            item.shares_request = false;
        }
    }
    if !matches!(acks, -1..=1) {
        set_all(&mut response, ResponseError::InvalidRequiredAcks.code());
        return Some(response);
    }
    let jobs = by_shard.into_iter().map(|(owner, items)| {
        let slots: Vec<(usize, usize)> = items.iter().map(|i| i.slot).collect();
        let job = shard.run_on(owner, move |s| produce_on_owner(s, items, acks, timeout_ms));
        async move { (slots, job.await) }
    });
    for (slots, outcome) in futures::future::join_all(jobs).await {
        let outcomes = outcome.unwrap_or_else(|_| {
            vec![ProduceOutcome::error(ResponseError::NotLeaderOrFollower.code()); slots.len()]
        });
        for ((t, p), o) in slots.into_iter().zip(outcomes) {
            let topic_response = &mut response.responses[t];
            let topic = &topic_response.name.0;
            let r = &mut topic_response.partition_responses[p];
            r.error_code = o.error_code;
            r.base_offset = o.base_offset;
            r.log_append_time_ms = o.log_append_time_ms;
            // Each field exists from the version noted; the codec refuses it before.
            if ctx.version >= 5 {
                r.log_start_offset = o.log_start_offset;
            }
            if let Some(keyless) = o.keyless.filter(|_| ctx.version >= 8) {
                let (errors, summary) = keyless_record_errors(topic, r.index, &keyless);
                r.record_errors = errors;
                r.error_message = Some(summary);
            }
        }
    }
    (acks != 0).then_some(response)
}

fn set_all(response: &mut ProduceResponse, code: i16) {
    for t in &mut response.responses {
        for p in &mut t.partition_responses {
            p.error_code = code;
        }
    }
}

/// Runs on the owning shard: validates and appends every batch, then waits
/// for the writes (one flush covers them all).
async fn produce_on_owner(
    shard: Rc<Shard>,
    items: Vec<ProduceItem>,
    acks: i16,
    timeout_ms: i32,
) -> Vec<ProduceOutcome> {
    let mut appended = Vec::with_capacity(items.len());
    for item in &items {
        appended.push(append_one(&shard, item, acks).await);
    }
    let waits = appended.into_iter().map(|a| async move {
        match a {
            Err(refused) => refused,
            Ok((pending, timestamp_type)) => match pending.acknowledged(timeout_ms).await {
                Ok(outcome) => ProduceOutcome {
                    error_code: 0,
                    base_offset: outcome.result().base_offset as i64,
                    log_start_offset: outcome.result().log_start_offset as i64,
                    log_append_time_ms: log_append_time(&outcome, timestamp_type),
                    keyless: None,
                },
                Err(e) => ProduceOutcome::error(replication_error_code(&e)),
            },
        }
    });
    futures::future::join_all(waits).await
}

/// What Produce answers as `log_append_time_ms`: the broker's stamp on a
/// LogAppendTime topic, -1 on a CreateTime one; for a duplicate, the
/// original batch's `maxTimestamp`, as Kafka answers it.
fn log_append_time(outcome: &AppendOutcome, timestamp_type: TimestampType) -> i64 {
    match (outcome, timestamp_type) {
        (AppendOutcome::Duplicate(r), _) => r.max_timestamp,
        (AppendOutcome::Appended(r), TimestampType::LogAppendTime) => r.max_timestamp,
        (AppendOutcome::Appended(_), TimestampType::CreateTime) => -1,
    }
}

/// The answer to a batch that fails validation: its error code, and for
/// keyless records on a compacted topic, which ones, with the log start
/// (as Kafka's ReplicaManager answers a RecordValidationException).
fn refusal(log: &storage::PartitionLog, error: BatchError) -> ProduceOutcome {
    match error {
        BatchError::KeylessRecords(keyless) => ProduceOutcome {
            log_start_offset: log.log_start_offset() as i64,
            keyless: Some(keyless),
            ..ProduceOutcome::error(ResponseError::InvalidRecord.code())
        },
        other => ProduceOutcome::error(batch_error_code(&other)),
    }
}

/// Kafka's record errors and summary message for the keyless records of a
/// batch refused by a compacted topic (`LogValidator.validateKey` and
/// `processRecordErrors`): one error per record, and a message naming the
/// count and the first three.
fn keyless_record_errors(
    topic: &StrBytes,
    partition: i32,
    keyless: &KeylessRecords,
) -> (Vec<BatchIndexAndErrorMessage>, StrBytes) {
    let message = format!(
        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}"
    );
    let shown: Vec<String> = keyless
        .indexes
        .iter()
        .take(3)
        .map(|i| format!("RecordError(batchIndex={i}, message='{message}')"))
        .collect();
    let summary = format!(
        "One or more records have been rejected due to {} record errors in total, \
         and only showing the first three errors at most: [{}]",
        keyless.total,
        shown.join(", ")
    );
    let message = StrBytes::from_string(message);
    let errors = keyless
        .indexes
        .iter()
        .map(|&i| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(i)
                .with_batch_index_error_message(Some(message.clone()))
        })
        .collect();
    (errors, StrBytes::from_string(summary))
}

/// The Kafka error code for a batch that fails validation.
fn batch_error_code(error: &BatchError) -> i16 {
    match error {
        BatchError::Corrupt(_) => ResponseError::CorruptMessage.code(),
        BatchError::Invalid(_) | BatchError::KeylessRecords(_) => {
            ResponseError::InvalidRecord.code()
        }
        BatchError::UnsupportedCompression(_) => ResponseError::UnsupportedCompressionType.code(),
        // Kafka's RECORD_TOO_LARGE: see `BatchError::TooLarge` for why.
        BatchError::TooLarge { .. } => ResponseError::MessageTooLarge.code(),
        BatchError::InvalidTimestamp(_) => ResponseError::InvalidTimestamp.code(),
    }
}

type Appended = (PendingWrite, TimestampType);

/// Checks one batch as Apache Kafka's log validator does, then appends it;
/// the error is the partition's answer.
async fn append_one(
    shard: &Rc<Shard>,
    item: &ProduceItem,
    acks: i16,
) -> Result<Appended, ProduceOutcome> {
    let log = owned_log(shard, &item.topic, item.partition).await?;
    let partition = Partition::new(shard, log.clone());
    let leader_epoch = partition
        .check_write(acks)
        .map_err(|e| ProduceOutcome::error(replication_error_code(&e)))?;
    let records = item
        .records
        .as_ref()
        .filter(|r| !r.is_empty())
        .ok_or(ResponseError::InvalidRecord.code())?;
    let settings = log.produce_settings();
    if records.len() > settings.max_message_bytes.max(0) as usize {
        return Err(ResponseError::MessageTooLarge.code().into());
    }
    let now_ms = storage::now_ms();
    let bound = decompressed_bytes_max(settings.max_message_bytes);
    let valid = validate_producer_batch_for(records, &record_checks(&settings, now_ms), bound)
        .map_err(|e| refusal(&log, e))?;
    let stored = stored_form(records, valid, &settings, now_ms).map_err(|e| refusal(&log, e))?;
    if stored.bytes.len() > settings.max_message_bytes.max(0) as usize {
        return Err(ResponseError::MessageTooLarge.code().into());
    }
    let batch = BatchToAppend {
        bytes: &stored.bytes,
        header: &stored.header,
        shares_buffer: item.shares_request && !stored.rewritten,
    };
    let wanted = Acknowledgement::of_produce(&log, acks);
    let pending = partition
        .append(batch, leader_epoch, wanted)
        .map_err(|e| replication_error_code(&e))?;
    Ok((pending, settings.timestamp_type))
}

/// The record checks a topic's configs ask for, as of `now_ms`.
fn record_checks(settings: &ProduceSettings, now_ms: i64) -> RecordChecks {
    let timestamps = match settings.timestamp_type {
        TimestampType::LogAppendTime => TimestampRule::LogAppendTime,
        TimestampType::CreateTime => TimestampRule::CreateTime {
            now_ms,
            before_max_ms: settings.timestamp_before_max_ms,
            after_max_ms: settings.timestamp_after_max_ms,
        },
    };
    RecordChecks {
        require_keys: settings.compacted,
        timestamps,
    }
}

/// A batch as the log stores it.
struct StoredBatch {
    bytes: bytes::Bytes,
    /// The header to store: its attributes, `maxTimestamp` and CRC win over
    /// those in `bytes` (see `PartitionLog::append`).
    header: BatchHeader,
    /// Whether `bytes` is a new buffer rather than a slice of the request.
    rewritten: bool,
}

/// A valid batch in the form its topic stores: recompressed when the
/// topic's codec is not the producer's, then stamped as Kafka's
/// `setMaxTimestamp` stamps it: with the broker's clock on a LogAppendTime
/// topic, else with the records' largest timestamp (which changes nothing
/// for a producer that set it right).
fn stored_form(
    records: &bytes::Bytes,
    valid: ValidBatch,
    settings: &ProduceSettings,
    now_ms: i64,
) -> Result<StoredBatch, BatchError> {
    let source = Codec::of(valid.header.attributes)?;
    let target = target_codec(settings.compression).filter(|t| *t != source);
    let (bytes, header, max_timestamp, rewritten) = match target {
        Some(codec) => {
            let levels = CodecLevels {
                gzip: settings.compression_levels.gzip,
                lz4: settings.compression_levels.lz4,
                zstd: settings.compression_levels.zstd,
            };
            let bound = decompressed_bytes_max(settings.max_message_bytes);
            let bytes = recompress(records, codec, &levels, bound)?;
            let header = BatchHeader::parse(&bytes)?;
            (bytes, header, valid.max_timestamp, true)
        }
        None => (records.clone(), valid.header, valid.max_timestamp, false),
    };
    let log_append_time = settings.timestamp_type == TimestampType::LogAppendTime;
    let stamp = if log_append_time {
        now_ms
    } else {
        max_timestamp
    };
    Ok(StoredBatch {
        header: stamp_batch(&bytes, &header, log_append_time, stamp),
        bytes,
        rewritten,
    })
}

/// The codec a topic stores batches with; `None`: the producer's.
fn target_codec(compression: TopicCompression) -> Option<Codec> {
    match compression {
        TopicCompression::Producer => None,
        TopicCompression::Uncompressed => Some(Codec::None),
        TopicCompression::Gzip => Some(Codec::Gzip),
        TopicCompression::Snappy => Some(Codec::Snappy),
        TopicCompression::Lz4 => Some(Codec::Lz4),
        TopicCompression::Zstd => Some(Codec::Zstd),
    }
}
