//! DescribeConfigs, IncrementalAlterConfigs and the legacy AlterConfigs for
//! topics (and a read-only view of the broker's own settings), answered on
//! the shard that got the request. Every topic config of Apache Kafka 4.x is
//! described, with Kafka's types and sources; alterations are checked by
//! the registry (`metadata`), which keeps them in canonical form, and in a
//! cluster go to the controller.
use super::authz::RequestAuthorizer;
use super::{metadata_error_code, str_bytes, RequestContext};
use crate::config::{broker_synonym, kafka_synonym, ConfigOrigin, TopicConfig, TOPIC_CONFIG_DEFS};
use crate::metadata::ConfigChange;
use crate::shard::Shard;
use kafka_protocol::messages::create_topics_response::CreatableTopicConfigs;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::*;
use model::acl::AclOperation;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use wire::ResponseError;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

// Kafka's ConfigSource values.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Why a resource's alteration failed: its error code and message.
#[derive(Debug)]
struct AlterError {
    code: i16,
    message: String,
}

impl AlterError {
    fn invalid_request(message: impl Into<String>) -> Self {
        AlterError {
            code: ResponseError::InvalidRequest.code(),
            message: message.into(),
        }
    }

    fn invalid_config(message: impl Into<String>) -> Self {
        AlterError {
            code: ResponseError::InvalidConfig.code(),
            message: message.into(),
        }
    }

    fn unknown_topic(topic: &str) -> Self {
        AlterError {
            code: ResponseError::UnknownTopicOrPartition.code(),
            message: format!("unknown topic {topic}"),
        }
    }
}

fn source_code(origin: ConfigOrigin) -> i8 {
    match origin {
        ConfigOrigin::Topic => SOURCE_DYNAMIC_TOPIC,
        ConfigOrigin::Broker => SOURCE_STATIC_BROKER,
        ConfigOrigin::Default => SOURCE_DEFAULT,
    }
}

/// One described topic config.
struct Described {
    name: &'static str,
    value: String,
    source: i8,
    config_type: i8,
    doc: &'static str,
}

/// Every config of a topic DescribeConfigs lists: each Kafka key with a
/// value (keys without a default, such as `internal.segment.bytes`, only
/// once set), in name order.
fn described(config: &TopicConfig) -> impl Iterator<Item = Described> + '_ {
    TOPIC_CONFIG_DEFS.iter().filter_map(|def| {
        Some(Described {
            name: def.name,
            value: config.value_of(def.name)?,
            source: source_code(config.origin_of(def.name)),
            config_type: def.kind.describe_code(),
            doc: def.doc,
        })
    })
}

/// The synonyms of a topic config, most specific first, as Kafka lists them
/// with `include_synonyms`: the topic's own value, then the broker setting
/// it falls back to (Tidemark's own setting where it has one, else Kafka's
/// name for it, with Kafka's default); none for keys Kafka lists none for.
fn synonyms(
    config: &TopicConfig,
    defaults: &TopicConfig,
    key: &str,
) -> Vec<DescribeConfigsSynonym> {
    let synonym = |name: &str, value: Option<String>, source: i8| {
        DescribeConfigsSynonym::default()
            .with_name(str_bytes(name))
            .with_value(value.map(str_bytes))
            .with_source(source)
    };
    let mut out = Vec::with_capacity(2);
    if config.is_override(key) {
        out.push(synonym(key, config.value_of(key), SOURCE_DYNAMIC_TOPIC));
    }
    if let Some(name) = broker_synonym(key).or_else(|| kafka_synonym(key)) {
        let source = source_code(defaults.origin_of(key));
        out.push(synonym(name, defaults.value_of(key), source));
    }
    out
}

/// The `configs` of a CreateTopics (v5+) answer: what DescribeConfigs
/// would list for the new topic.
pub(super) fn created_topic_configs(config: &TopicConfig) -> Vec<CreatableTopicConfigs> {
    described(config)
        .map(|d| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(d.name))
                .with_value(Some(str_bytes(d.value)))
                .with_read_only(false)
                .with_config_source(d.source)
                .with_is_sensitive(false)
        })
        .collect()
}

pub async fn describe_configs(
    shard: &Rc<Shard>,
    request: DescribeConfigsRequest,
    ctx: &RequestContext,
) -> DescribeConfigsResponse {
    let mut response = DescribeConfigsResponse::default();
    let authorizer = RequestAuthorizer::of(shard, ctx);
    for resource in request.resources {
        let wanted = |key: &str| {
            resource
                .configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
        };
        // Kafka answers an empty error message, not null, when there is no
        // error (the field's default): so does Tidemark.
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let refused = refusal(
            &authorizer,
            resource.resource_type,
            &resource.resource_name,
            AclOperation::DescribeConfigs,
        );
        if let Some(error) = refused {
            result.error_code = error.code();
            result.error_message = Some(str_bytes("Authorization failed."));
            response.results.push(result);
            continue;
        }
        match resource.resource_type {
            RESOURCE_TOPIC => match shard.metadata.topic(resource.resource_name.as_str()) {
                Some(topic) => {
                    let config = shard.metadata.topic_config(&topic);
                    let defaults = shard.metadata.topic_defaults();
                    for d in described(&config).filter(|d| wanted(d.name)) {
                        let synonyms = if request.include_synonyms {
                            synonyms(&config, defaults, d.name)
                        } else {
                            Vec::new()
                        };
                        let doc = request.include_documentation.then(|| str_bytes(d.doc));
                        result.configs.push(
                            entry(d.name, Some(d.value), d.source, false)
                                .with_config_type(d.config_type)
                                .with_synonyms(synonyms)
                                .with_documentation(doc),
                        );
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
        .with_config_type(broker_config_type(key))
}

/// Kafka's ConfigType of a broker setting.
fn broker_config_type(key: &str) -> i8 {
    const TYPE_BOOLEAN: i8 = 1;
    const TYPE_STRING: i8 = 2;
    const TYPE_INT: i8 = 3;
    const TYPE_LONG: i8 = 5;
    match key {
        "auto.create.topics.enable" => TYPE_BOOLEAN,
        "log.dirs" => TYPE_STRING,
        "message.max.bytes" | "node.id" | "num.partitions" | "log.segment.bytes" => TYPE_INT,
        _ => TYPE_LONG,
    }
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
    ctx: &RequestContext,
) -> IncrementalAlterConfigsResponse {
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let mut response = IncrementalAlterConfigsResponse::default();
    let authorizer = RequestAuthorizer::of(shard, ctx);
    for resource in request.resources {
        let outcome =
            match alter_refusal(&authorizer, resource.resource_type, &resource.resource_name) {
                Some(refused) => Err(refused),
                None => alter_incrementally(shard, &resource, request.validate_only).await,
            };
        let (code, message) = answer(outcome);
        response.responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    response
}

/// The legacy AlterConfigs: the request's configs become the topic's whole
/// set of overrides (every other one returns to its default), as in Kafka.
pub async fn alter_configs(
    shard: &Rc<Shard>,
    request: AlterConfigsRequest,
    ctx: &RequestContext,
) -> AlterConfigsResponse {
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    let mut response = AlterConfigsResponse::default();
    let authorizer = RequestAuthorizer::of(shard, ctx);
    for resource in request.resources {
        let outcome =
            match alter_refusal(&authorizer, resource.resource_type, &resource.resource_name) {
                Some(refused) => Err(refused),
                None => replace_configs(shard, &resource, request.validate_only).await,
            };
        let (code, message) = answer(outcome);
        response.responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    response
}

/// A resource's error code and message: null when it succeeded, as Kafka
/// answers both alter APIs.
fn answer(outcome: Result<(), AlterError>) -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err(e) => (e.code, Some(str_bytes(e.message))),
    }
}

/// Kafka's check of a config resource: `operation` on the topic, or on
/// the cluster for a broker; unknown resource types are left to the
/// handlers' own refusal.
fn refusal(
    authorizer: &RequestAuthorizer,
    resource_type: i8,
    name: &str,
    operation: AclOperation,
) -> Option<ResponseError> {
    match resource_type {
        RESOURCE_TOPIC if !authorizer.allows_topic(operation, name) => {
            Some(ResponseError::TopicAuthorizationFailed)
        }
        RESOURCE_BROKER if !authorizer.allows_cluster(operation) => {
            Some(ResponseError::ClusterAuthorizationFailed)
        }
        _ => None,
    }
}

fn alter_refusal(
    authorizer: &RequestAuthorizer,
    resource_type: i8,
    name: &str,
) -> Option<AlterError> {
    refusal(authorizer, resource_type, name, AclOperation::AlterConfigs).map(|e| AlterError {
        code: e.code(),
        message: "Authorization failed.".into(),
    })
}

/// The checks both alter APIs make of a resource before its configs.
fn check_resource(resource_type: i8) -> Result<(), AlterError> {
    match resource_type {
        RESOURCE_TOPIC => Ok(()),
        RESOURCE_BROKER => Err(AlterError::invalid_request(
            "broker configs are static: change the config file and restart",
        )),
        other => Err(AlterError::invalid_request(format!(
            "unknown resource type {other}"
        ))),
    }
}

/// Kafka refuses a resource that names one key twice, in either API.
fn check_distinct<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), AlterError> {
    let mut seen = BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(AlterError::invalid_request(format!(
                "config key {name} appears twice"
            )));
        }
    }
    Ok(())
}

fn null_value(key: &str) -> AlterError {
    AlterError::invalid_request(format!("{key}: a null value is not allowed here"))
}

/// The topic's current effective config (what APPEND and SUBTRACT start from).
fn current_config(shard: &Shard, topic: &str) -> Result<TopicConfig, AlterError> {
    let meta = shard
        .metadata
        .topic(topic)
        .ok_or_else(|| AlterError::unknown_topic(topic))?;
    Ok(shard.metadata.topic_config(&meta))
}

async fn alter_incrementally(
    shard: &Rc<Shard>,
    resource: &incremental_alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), AlterError> {
    check_resource(resource.resource_type)?;
    check_distinct(resource.configs.iter().map(|c| c.name.as_str()))?;
    let topic = resource.resource_name.as_str();
    let current = current_config(shard, topic)?;
    let mut changes = Vec::with_capacity(resource.configs.len());
    for c in &resource.configs {
        changes.push(incremental_change(&current, c)?);
    }
    apply_changes(shard, topic, changes, validate_only).await
}

/// One IncrementalAlterConfigs operation as a change of the stored value:
/// APPEND and SUBTRACT become a SET of the list they leave.
fn incremental_change(
    current: &TopicConfig,
    config: &incremental_alter_configs_request::AlterableConfig,
) -> Result<ConfigChange, AlterError> {
    let key = config.name.as_str();
    let value = config.value.as_ref().map(|v| v.as_str());
    let invalid = |e: crate::config::TopicConfigError| AlterError::invalid_config(e.to_string());
    let new_value = match (config.config_operation, value) {
        (OP_DELETE, _) => return Ok(ConfigChange::Delete(key.to_string())),
        (OP_SET | OP_APPEND | OP_SUBTRACT, None) => return Err(null_value(key)),
        (OP_SET, Some(v)) => v.to_string(),
        (OP_APPEND, Some(v)) => current.appended(key, v).map_err(invalid)?,
        (OP_SUBTRACT, Some(v)) => current.subtracted(key, v).map_err(invalid)?,
        (other, _) => {
            return Err(AlterError::invalid_request(format!(
                "{key}: unknown operation {other}"
            )))
        }
    };
    Ok(ConfigChange::Set(key.to_string(), new_value))
}

async fn replace_configs(
    shard: &Rc<Shard>,
    resource: &alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), AlterError> {
    check_resource(resource.resource_type)?;
    check_distinct(resource.configs.iter().map(|c| c.name.as_str()))?;
    let topic = resource.resource_name.as_str();
    let current = current_config(shard, topic)?;
    let mut wanted = BTreeMap::new();
    for c in &resource.configs {
        let value = c.value.as_ref().ok_or_else(|| null_value(&c.name))?;
        wanted.insert(c.name.to_string(), value.to_string());
    }
    let mut changes: Vec<ConfigChange> = current
        .overrides
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .map(|k| ConfigChange::Delete(k.clone()))
        .collect();
    changes.extend(wanted.into_iter().map(|(k, v)| ConfigChange::Set(k, v)));
    apply_changes(shard, topic, changes, validate_only).await
}

/// Checks `changes` against the registry and applies them: here and on
/// every shard, or through the controller in a cluster.
async fn apply_changes(
    shard: &Rc<Shard>,
    topic: &str,
    changes: Vec<ConfigChange>,
    validate_only: bool,
) -> Result<(), AlterError> {
    let metadata_error = |e: crate::metadata::MetadataError| AlterError {
        code: metadata_error_code(&e),
        message: e.to_string(),
    };
    let updated = shard
        .metadata
        .check_config_changes(topic, &changes)
        .map_err(metadata_error)?;
    if validate_only {
        return Ok(());
    }
    // The controller keeps configs, in the canonical form the registry
    // gave them; shards reload them with its view.
    let (mut set, mut delete) = (BTreeMap::new(), Vec::new());
    for change in changes {
        match change {
            ConfigChange::Set(k, v) => {
                let canonical = updated.configs.get(&k).cloned().unwrap_or(v);
                set.insert(k, canonical);
            }
            ConfigChange::Delete(k) => delete.push(k),
        }
    }
    crate::replication::cluster_admin::alter_topic_configs(shard, topic, set, delete)
        .await
        .map_err(metadata_error)
}
