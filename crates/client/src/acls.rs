//! Kafka's ACLs from the client side: CreateAcls, DescribeAcls and
//! DeleteAcls, as Kafka's AdminClient sends them, with Kafka's numeric
//! resource, pattern, operation and permission ids. Runs on the CLI's main
//! thread.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;

use super::{Client, ClientError, Target};

/// One ACL, with Kafka's ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

/// A filter: `None` strings and id 1 (ANY) match every value; pattern
/// type 2 (MATCH) matches the ACLs that apply to the named resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclQuery {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

impl Client {
    /// Creates `acls`; the first refused one's error comes back.
    pub fn create_acls(&mut self, acls: &[Acl]) -> Result<(), ClientError> {
        let creations = acls
            .iter()
            .map(|a| {
                AclCreation::default()
                    .with_resource_type(a.resource_type)
                    .with_resource_name(text(&a.resource_name))
                    .with_resource_pattern_type(a.pattern_type)
                    .with_principal(text(&a.principal))
                    .with_host(text(&a.host))
                    .with_operation(a.operation)
                    .with_permission_type(a.permission)
            })
            .collect();
        let request = CreateAclsRequest::default().with_creations(creations);
        let (_, response) = self.call(Target::Controller, |_| request)?;
        match response.results.iter().find(|r| r.error_code != 0) {
            None => Ok(()),
            Some(r) => Err(ClientError::kafka(
                "CreateAcls",
                r.error_code,
                "",
                r.error_message.as_deref(),
            )),
        }
    }

    /// The ACLs `query` matches.
    pub fn describe_acls(&mut self, query: &AclQuery) -> Result<Vec<Acl>, ClientError> {
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(query.resource_type)
            .with_resource_name_filter(query.resource_name.as_deref().map(text))
            .with_pattern_type_filter(query.pattern_type)
            .with_principal_filter(query.principal.as_deref().map(text))
            .with_host_filter(query.host.as_deref().map(text))
            .with_operation(query.operation)
            .with_permission_type(query.permission);
        let (_, response) = self.call(Target::Any, |_| request)?;
        if response.error_code != 0 {
            return Err(ClientError::kafka(
                "DescribeAcls",
                response.error_code,
                "",
                response.error_message.as_deref(),
            ));
        }
        let mut acls = Vec::new();
        for resource in &response.resources {
            for acl in &resource.acls {
                acls.push(Acl {
                    resource_type: resource.resource_type,
                    resource_name: resource.resource_name.to_string(),
                    pattern_type: resource.pattern_type,
                    principal: acl.principal.to_string(),
                    host: acl.host.to_string(),
                    operation: acl.operation,
                    permission: acl.permission_type,
                });
            }
        }
        Ok(acls)
    }

    /// Deletes the ACLs `query` matches and returns them.
    pub fn delete_acls(&mut self, query: &AclQuery) -> Result<Vec<Acl>, ClientError> {
        let filter = DeleteAclsFilter::default()
            .with_resource_type_filter(query.resource_type)
            .with_resource_name_filter(query.resource_name.as_deref().map(text))
            .with_pattern_type_filter(query.pattern_type)
            .with_principal_filter(query.principal.as_deref().map(text))
            .with_host_filter(query.host.as_deref().map(text))
            .with_operation(query.operation)
            .with_permission_type(query.permission);
        let request = DeleteAclsRequest::default().with_filters(vec![filter]);
        let (_, response) = self.call(Target::Controller, |_| request)?;
        let result = response
            .filter_results
            .first()
            .ok_or_else(|| ClientError::Protocol("DeleteAcls: no filter result".into()))?;
        if result.error_code != 0 {
            return Err(ClientError::kafka(
                "DeleteAcls",
                result.error_code,
                "",
                result.error_message.as_deref(),
            ));
        }
        Ok(result
            .matching_acls
            .iter()
            .map(|m| Acl {
                resource_type: m.resource_type,
                resource_name: m.resource_name.to_string(),
                pattern_type: m.pattern_type,
                principal: m.principal.to_string(),
                host: m.host.to_string(),
                operation: m.operation,
                permission: m.permission_type,
            })
            .collect())
    }
}
