//! CreateAcls, DescribeAcls and DeleteAcls: Kafka's ACLs, kept in the
//! quorum's view (`quorum::acls`) and applied by every broker's authorizer
//! (`authz.rs`). As in Kafka: creating and deleting need ALTER on the
//! cluster, describing DESCRIBE on the cluster, and without an authorizer
//! each answers SECURITY_DISABLED. Runs on the shard that got the request.
use super::authz::RequestAuthorizer;
use super::proposals::propose_each;
use super::{str_bytes, RequestContext};
use crate::shard::Shard;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use model::acl::{
    AclBinding, AclFilter, AclOperation, AclPermission, InvalidAclField, PatternType, ResourceType,
};
use quorum::state::{Command, Outcome};
use std::collections::BTreeMap;
use std::rc::Rc;
use wire::ResponseError;

/// Why an ACL request is answered with one error for everything in it.
fn refusal(shard: &Rc<Shard>, ctx: &RequestContext, needs: AclOperation) -> Option<(i16, String)> {
    let authorizer = RequestAuthorizer::of(shard, ctx);
    if !authorizer.is_on() {
        return Some((
            ResponseError::SecurityDisabled.code(),
            "No Authorizer is configured.".into(),
        ));
    }
    if !authorizer.allows_cluster(needs) {
        return Some((
            ResponseError::ClusterAuthorizationFailed.code(),
            format!("{needs:?} on the cluster is not allowed"),
        ));
    }
    None
}

fn invalid(e: InvalidAclField) -> (i16, String) {
    (ResponseError::InvalidRequest.code(), e.to_string())
}

fn binding_of(creation: &AclCreation) -> Result<AclBinding, (i16, String)> {
    let binding = AclBinding {
        resource_type: ResourceType::from_id(creation.resource_type).map_err(invalid)?,
        resource_name: creation.resource_name.to_string(),
        pattern_type: PatternType::from_id(creation.resource_pattern_type).map_err(invalid)?,
        principal: creation.principal.to_string(),
        host: creation.host.to_string(),
        operation: AclOperation::from_id(creation.operation).map_err(invalid)?,
        permission: AclPermission::from_id(creation.permission_type).map_err(invalid)?,
    };
    match binding.invalid_reason() {
        Some(reason) => Err((ResponseError::InvalidRequest.code(), reason)),
        None => Ok(binding),
    }
}

pub async fn create_acls(
    shard: &Rc<Shard>,
    request: CreateAclsRequest,
    ctx: &RequestContext,
) -> CreateAclsResponse {
    let result = |(code, message): (i16, String)| {
        AclCreationResult::default()
            .with_error_code(code)
            .with_error_message(Some(str_bytes(&message)))
    };
    if let Some(refused) = refusal(shard, ctx, AclOperation::Alter) {
        let results = request
            .creations
            .iter()
            .map(|_| result(refused.clone()))
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let checked: Vec<Result<AclBinding, (i16, String)>> =
        request.creations.iter().map(binding_of).collect();
    let commands = checked
        .iter()
        .filter_map(|c| c.as_ref().ok())
        .map(|binding| Command::CreateAcl {
            binding: binding.clone(),
        })
        .collect();
    let mut proposed = propose_each(shard, commands).await.into_iter();
    let results = checked
        .into_iter()
        .map(|c| match c.map(|_| proposed.next()) {
            Ok(Some(Ok(_))) => AclCreationResult::default(),
            Ok(Some(Err(e))) | Err(e) => result(e),
            Ok(None) => result((
                ResponseError::UnknownServerError.code(),
                "no outcome".into(),
            )),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

fn filter_of(
    resource_type: i8,
    resource_name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, (i16, String)> {
    let text = |s: Option<&StrBytes>| s.map(|s| s.to_string());
    AclFilter::from_wire(
        resource_type,
        text(resource_name),
        pattern_type,
        text(principal),
        text(host),
        operation,
        permission,
    )
    .map_err(invalid)
}

pub async fn describe_acls(
    shard: &Rc<Shard>,
    request: DescribeAclsRequest,
    ctx: &RequestContext,
) -> DescribeAclsResponse {
    let failed = |(code, message): (i16, String)| {
        DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(str_bytes(&message)))
    };
    if let Some(refused) = refusal(shard, ctx, AclOperation::Describe) {
        return failed(refused);
    }
    let filter = match filter_of(
        request.resource_type_filter,
        request.resource_name_filter.as_ref(),
        request.pattern_type_filter,
        request.principal_filter.as_ref(),
        request.host_filter.as_ref(),
        request.operation,
        request.permission_type,
    ) {
        Ok(f) => f,
        Err(e) => return failed(e),
    };
    let view = shard.replication().view().unwrap_or_default();
    let mut resources: BTreeMap<(ResourceType, String, PatternType), Vec<AclDescription>> =
        BTreeMap::new();
    for binding in view.security.acls.iter().filter(|b| filter.matches(b)) {
        let key = (
            binding.resource_type,
            binding.resource_name.clone(),
            binding.pattern_type,
        );
        resources.entry(key).or_default().push(
            AclDescription::default()
                .with_principal(str_bytes(&binding.principal))
                .with_host(str_bytes(&binding.host))
                .with_operation(binding.operation.id())
                .with_permission_type(binding.permission.id()),
        );
    }
    let resources = resources
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type.id())
                .with_resource_name(str_bytes(&name))
                .with_pattern_type(pattern_type.id())
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

fn matching(binding: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(binding.resource_type.id())
        .with_resource_name(str_bytes(&binding.resource_name))
        .with_pattern_type(binding.pattern_type.id())
        .with_principal(str_bytes(&binding.principal))
        .with_host(str_bytes(&binding.host))
        .with_operation(binding.operation.id())
        .with_permission_type(binding.permission.id())
}

pub async fn delete_acls(
    shard: &Rc<Shard>,
    request: DeleteAclsRequest,
    ctx: &RequestContext,
) -> DeleteAclsResponse {
    let failed = |(code, message): (i16, String)| {
        DeleteAclsFilterResult::default()
            .with_error_code(code)
            .with_error_message(Some(str_bytes(&message)))
    };
    if let Some(refused) = refusal(shard, ctx, AclOperation::Alter) {
        let results = request
            .filters
            .iter()
            .map(|_| failed(refused.clone()))
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let checked: Vec<Result<AclFilter, (i16, String)>> = request
        .filters
        .iter()
        .map(|f| {
            filter_of(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let commands = checked
        .iter()
        .filter_map(|c| c.as_ref().ok())
        .map(|filter| Command::DeleteAcls {
            filter: filter.clone(),
        })
        .collect();
    let mut proposed = propose_each(shard, commands).await.into_iter();
    let results = checked
        .into_iter()
        .map(|c| match c.map(|_| proposed.next()) {
            Ok(Some(Ok(Outcome::AclsDeleted(deleted)))) => DeleteAclsFilterResult::default()
                .with_matching_acls(deleted.iter().map(matching).collect()),
            Ok(Some(Ok(_))) | Ok(None) => failed((
                ResponseError::UnknownServerError.code(),
                "no outcome".into(),
            )),
            Ok(Some(Err(e))) | Err(e) => failed(e),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
