//! Authorization of Kafka requests with Kafka's ACLs (`model::acl`), on
//! when `authorizer.class.name` names Kafka's StandardAuthorizer: each
//! handler asks `RequestAuthorizer::allows` for the operation Kafka checks
//! for that API, over the ACLs of this shard's view. Off, everything is
//! allowed, as in Kafka without an authorizer. Runs on the shard that got
//! the request.
use super::RequestContext;
use crate::config::BrokerConfig;
use crate::shard::Shard;
use model::acl::{
    authorize, authorize_any, authorized_operations, AclBinding, AclOperation, Action,
    AuthorizerRules, ResourceType, CLUSTER_RESOURCE,
};
use quorum::model::ClusterView;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;

/// What one request may do.
pub struct RequestAuthorizer {
    /// `None`: no authorizer configured.
    checked: Option<Checked>,
}

struct Checked {
    /// Holds the rules (`config.authorizer` is `Some`).
    config: Arc<BrokerConfig>,
    view: Arc<ClusterView>,
    principal: String,
    host: String,
}

impl RequestAuthorizer {
    /// The authorizer of the request `ctx` on `shard`.
    pub fn of(shard: &Rc<Shard>, ctx: &RequestContext) -> RequestAuthorizer {
        let checked = shard.config.authorizer.as_ref().map(|_| Checked {
            config: shard.config.clone(),
            view: shard.replication().view().unwrap_or_default(),
            principal: ctx.session.principal.to_string(),
            // Kafka's ACL hosts are bare addresses; the session keeps "/ip".
            host: ctx.client_host.trim_start_matches('/').to_string(),
        });
        RequestAuthorizer { checked }
    }

    /// Whether the authorizer is on.
    pub fn is_on(&self) -> bool {
        self.checked.is_some()
    }

    /// Whether `operation` on `resource` of `resource_type` is allowed.
    pub fn allows(
        &self,
        operation: AclOperation,
        resource_type: ResourceType,
        resource: &str,
    ) -> bool {
        self.decide(operation, resource_type, resource, |acls, rules, action| {
            authorize(acls, rules, action)
        })
    }

    /// `operation` on some resource of `resource_type` (`authorize_any`).
    pub fn allows_some(&self, operation: AclOperation, resource_type: ResourceType) -> bool {
        self.decide(operation, resource_type, "", |acls, rules, action| {
            authorize_any(acls, rules, action)
        })
    }

    /// Runs `rule` over the view's ACLs; everything is allowed with the
    /// authorizer off.
    fn decide(
        &self,
        operation: AclOperation,
        resource_type: ResourceType,
        resource: &str,
        rule: impl Fn(&BTreeSet<AclBinding>, &AuthorizerRules, &Action<'_>) -> bool,
    ) -> bool {
        let Some(checked) = &self.checked else {
            return true;
        };
        let Some(rules) = checked.config.authorizer.as_ref() else {
            return true;
        };
        let action = Action {
            principal: &checked.principal,
            host: &checked.host,
            operation,
            resource_type,
            resource,
        };
        let allowed = rule(&checked.view.security.acls, rules, &action);
        if !allowed {
            tracing::debug!(principal = %checked.principal, host = %checked.host, ?operation, ?resource_type, resource, "denied");
        }
        allowed
    }

    /// The authorized-operations field (KIP-430) of `resource`: every
    /// operation that applies to its type with the authorizer off.
    pub fn authorized_operations(&self, resource_type: ResourceType, resource: &str) -> i32 {
        let no_acls = BTreeSet::new();
        let (acls, rules, principal, host) = match &self.checked {
            Some(checked) => (
                &checked.view.security.acls,
                checked.config.authorizer.as_ref(),
                checked.principal.as_str(),
                checked.host.as_str(),
            ),
            None => (&no_acls, None, "", ""),
        };
        authorized_operations(acls, rules, principal, host, resource_type, resource)
    }

    /// The cluster's authorized-operations field, as Kafka answers it:
    /// 0 to a principal that may not Describe the cluster.
    pub fn cluster_authorized_operations(&self) -> i32 {
        if self.allows_cluster(AclOperation::Describe) {
            self.authorized_operations(ResourceType::Cluster, CLUSTER_RESOURCE)
        } else {
            0
        }
    }

    /// `operation` on the cluster.
    pub fn allows_cluster(&self, operation: AclOperation) -> bool {
        self.allows(operation, ResourceType::Cluster, CLUSTER_RESOURCE)
    }

    pub fn allows_topic(&self, operation: AclOperation, topic: &str) -> bool {
        self.allows(operation, ResourceType::Topic, topic)
    }

    pub fn allows_group(&self, operation: AclOperation, group: &str) -> bool {
        self.allows(operation, ResourceType::Group, group)
    }
}
