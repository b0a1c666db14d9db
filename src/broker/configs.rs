//! DescribeConfigs and IncrementalAlterConfigs for topics (and a read-only
//! view of the broker's own settings).
use super::{metadata_error_code, str_bytes, RequestContext};
use crate::config::TOPIC_CONFIG_KEYS;
use crate::metadata::ConfigChange;
use crate::protocol::ResponseError;
use crate::shard::Shard;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::*;
use std::rc::Rc;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

// Kafka's ConfigSource values.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

// Kafka's ConfigType values.
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;

// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

fn config_type(key: &str) -> i8 {
    match key {
        "message.timestamp.type" => TYPE_STRING,
        "max.message.bytes" | "min.insync.replicas" => TYPE_INT,
        "cleanup.policy" => TYPE_LIST,
        _ => TYPE_LONG,
    }
}

pub async fn describe_configs(
    shard: &Rc<Shard>,
    request: DescribeConfigsRequest,
    ctx: &RequestContext,
) -> DescribeConfigsResponse {
    let mut response = DescribeConfigsResponse::default();
    for resource in request.resources {
        let wanted = |key: &str| {
            resource
                .configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
        };
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        match resource.resource_type {
            RESOURCE_TOPIC => match shard.metadata.topic(resource.resource_name.as_str()) {
                Some(topic) => {
                    let config = shard.metadata.topic_config(&topic);
                    for key in TOPIC_CONFIG_KEYS.iter().filter(|k| wanted(k)) {
                        let source = if config.is_override(key) {
                            SOURCE_DYNAMIC_TOPIC
                        } else {
                            SOURCE_DEFAULT
                        };
                        result
                            .configs
                            .push(entry(key, config.value_of(key), source, false));
                    }
                }
                None => {
                    result.error_code = ResponseError::UnknownTopicOrPartition.code();
                    result.error_message = Some(str_bytes("unknown topic"));
                }
            },
            RESOURCE_BROKER => {
                for (key, value) in broker_configs(shard) {
                    if wanted(key) {
                        result
                            .configs
                            .push(entry(key, Some(value), SOURCE_STATIC_BROKER, true));
                    }
                }
            }
            _ => {
                result.error_code = ResponseError::InvalidRequest.code();
                result.error_message =
                    Some(str_bytes("only topic and broker resources are supported"));
            }
        }
        if ctx.version < 3 {
            // Config types arrived in v3.
            for c in &mut result.configs {
                c.config_type = 0;
            }
        }
        response.results.push(result);
    }
    response
}

fn entry(
    key: &str,
    value: Option<String>,
    source: i8,
    read_only: bool,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(key))
        .with_value(value.map(str_bytes))
        .with_read_only(read_only)
        .with_config_source(source)
        .with_config_type(config_type(key))
}

/// The broker settings shown by DescribeConfigs, with Kafka's names.
fn broker_configs(shard: &Shard) -> Vec<(&'static str, String)> {
    let c = &shard.config;
    vec![
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
        ),
        ("log.dirs", c.data_dir.display().to_string()),
        ("log.retention.bytes", c.retention_bytes.to_string()),
        ("log.retention.ms", c.retention_ms.to_string()),
        ("log.roll.ms", c.segment_ms.to_string()),
        ("log.segment.bytes", c.segment_bytes.to_string()),
        ("message.max.bytes", c.message_max_bytes.to_string()),
        ("node.id", c.node_id.to_string()),
        ("num.partitions", c.default_partitions.to_string()),
    ]
}

pub async fn incremental_alter_configs(
    shard: &Rc<Shard>,
    request: IncrementalAlterConfigsRequest,
    _ctx: &RequestContext,
) -> IncrementalAlterConfigsResponse {
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in request.resources {
        // Kafka sends a null error message when there is no error.
        let mut result = AlterConfigsResourceResponse::default()
            .with_error_message(None)
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        if let Err((code, message)) = alter_one(shard, &resource, request.validate_only).await {
            result.error_code = code;
            result.error_message = Some(str_bytes(message));
        }
        response.responses.push(result);
    }
    response
}

async fn alter_one(
    shard: &Rc<Shard>,
    resource: &incremental_alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    if resource.resource_type != RESOURCE_TOPIC {
        return Err((
            ResponseError::InvalidRequest.code(),
            "broker configs are static: change the config file and restart".into(),
        ));
    }
    let mut changes = Vec::with_capacity(resource.configs.len());
    for c in &resource.configs {
        let key = c.name.to_string();
        match (c.config_operation, &c.value) {
            (OP_SET, Some(v)) => changes.push(ConfigChange::Set(key, v.to_string())),
            (OP_DELETE, _) => changes.push(ConfigChange::Delete(key)),
            (OP_SET, None) => return Err((ResponseError::InvalidConfig.code(), format!("{key}: no value"))),
            _ => {
                return Err((
                    ResponseError::InvalidConfig.code(),
                    format!("{key}: APPEND and SUBTRACT apply to list configs, and no supported topic config is a list"),
                ))
            }
        }
    }
    let topic = resource.resource_name.to_string();
    let in_cluster = shard.replication.in_cluster();
    let updated = shard
        .metadata
        .alter_topic_configs(&topic, &changes, validate_only || in_cluster)
        .map_err(|e| (metadata_error_code(&e), e.to_string()))?;
    if in_cluster && !validate_only {
        // The controller keeps configs, in the canonical form the registry
        // gave them; shards reload them with its view.
        let (mut set, mut delete) = (std::collections::BTreeMap::new(), Vec::new());
        for change in changes {
            match change {
                ConfigChange::Set(k, v) => {
                    let canonical = updated.configs.get(&k).cloned().unwrap_or(v);
                    set.insert(k, canonical);
                }
                ConfigChange::Delete(k) => delete.push(k),
            }
        }
        return crate::replication::cluster_admin::alter_topic_configs(shard, &topic, set, delete)
            .await
            .map_err(|e| (metadata_error_code(&e), e.to_string()));
    }
    if !validate_only {
        shard
            .run_on_all(move |s| {
                let topic = topic.clone();
                async move { s.reload_topic_config(&topic) }
            })
            .await;
    }
    Ok(())
}
