//! Kafka's ACL model and the decision of its StandardAuthorizer, pure:
//! bindings (a resource pattern and an entry: principal, host, operation,
//! allow or deny), the filters DescribeAcls and DeleteAcls match them
//! with, and `authorize`, which every broker runs over the bindings of its
//! view. Kafka's numeric ids are kept so that the wire conversions are
//! plain lookups; the JSON names are Kafka's upper-case names.
//!
//! The decision, as Kafka's: a super user may do everything; otherwise a
//! matching DENY wins over any ALLOW; ALLOW of Read, Write, Delete or Alter
//! implies Describe, and AlterConfigs implies DescribeConfigs; ALL matches
//! every operation; a resource no binding names at all is open only when
//! `allow.everyone.if.no.acl.found`.
//!
//! `authorized_operations` builds the KIP-430 bitfields of Metadata,
//! DescribeCluster and DescribeGroups from the same decision, over the
//! operations that apply to each resource type.
use serde::{Deserialize, Serialize};

/// The principal and host wildcards of an ACL entry.
pub const ANY_PRINCIPAL: &str = "User:*";
pub const ANY_HOST: &str = "*";
/// A literal resource name matching every resource of its type.
pub const WILDCARD_RESOURCE: &str = "*";
/// The one cluster resource's name.
pub const CLUSTER_RESOURCE: &str = "kafka-cluster";

/// Kafka's ResourceType, without UNKNOWN (0) and ANY (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
    User,
}

/// Kafka's PatternType of a binding: LITERAL (3) or PREFIXED (4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PatternType {
    Literal,
    Prefixed,
}

/// Kafka's AclOperation, without UNKNOWN (0) and ANY (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AclOperation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens,
}

/// Kafka's AclPermissionType: DENY (2) or ALLOW (3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AclPermission {
    Deny,
    Allow,
}

/// Wire id 0 (UNKNOWN) or 1 (ANY) where a binding needs a definite value,
/// or an id Kafka does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {id}")]
pub struct InvalidAclField {
    pub field: &'static str,
    pub id: i8,
}

macro_rules! kafka_ids {
    ($type:ident, $field:literal, $($variant:ident = $id:literal),+ $(,)?) => {
        impl $type {
            /// Kafka's id on the wire.
            pub fn id(self) -> i8 {
                match self { $($type::$variant => $id),+ }
            }

            /// From Kafka's id; UNKNOWN, ANY and undefined ids are errors.
            pub fn from_id(id: i8) -> Result<$type, InvalidAclField> {
                match id {
                    $($id => Ok($type::$variant),)+
                    _ => Err(InvalidAclField { field: $field, id }),
                }
            }
        }
    };
}

kafka_ids!(
    ResourceType,
    "resource type",
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
    DelegationToken = 6,
    User = 7
);
kafka_ids!(PatternType, "pattern type", Literal = 3, Prefixed = 4);
kafka_ids!(
    AclOperation,
    "operation",
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
    CreateTokens = 13,
    DescribeTokens = 14,
);
kafka_ids!(AclPermission, "permission type", Deny = 2, Allow = 3);

impl AclOperation {
    /// Every operation, as `kafka-acls --operation` names them.
    pub const NAMED: [(AclOperation, &'static str); 13] = [
        (AclOperation::All, "All"),
        (AclOperation::Read, "Read"),
        (AclOperation::Write, "Write"),
        (AclOperation::Create, "Create"),
        (AclOperation::Delete, "Delete"),
        (AclOperation::Alter, "Alter"),
        (AclOperation::Describe, "Describe"),
        (AclOperation::ClusterAction, "ClusterAction"),
        (AclOperation::DescribeConfigs, "DescribeConfigs"),
        (AclOperation::AlterConfigs, "AlterConfigs"),
        (AclOperation::IdempotentWrite, "IdempotentWrite"),
        (AclOperation::CreateTokens, "CreateTokens"),
        (AclOperation::DescribeTokens, "DescribeTokens"),
    ];

    /// From its name, in any case (`read`, `Read`, `READ`).
    pub fn from_name(name: &str) -> Option<AclOperation> {
        let wanted = name.replace('_', "");
        Self::NAMED
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(&wanted))
            .map(|(op, _)| *op)
    }

    pub fn name(self) -> &'static str {
        Self::NAMED
            .iter()
            .find(|(op, _)| *op == self)
            .map_or("Unknown", |(_, n)| n)
    }
}

impl ResourceType {
    /// The operations that apply to a resource of this type, those an
    /// authorized-operations field (KIP-430) reports on: Kafka's
    /// `AclEntry.supportedOperations` of Kafka 4.x (groups gained
    /// DescribeConfigs and AlterConfigs with KIP-848's group configs).
    pub fn supported_operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
        }
    }
}

/// What an authorized-operations field holds when the client did not ask
/// for it: the schema's default, INT32_MIN, as Kafka answers.
pub const AUTHORIZED_OPERATIONS_NOT_ASKED: i32 = i32::MIN;

/// Kafka's `Utils.to32BitField` over operation ids: bit `id` set for each
/// operation.
pub fn operations_bitfield(operations: impl IntoIterator<Item = AclOperation>) -> i32 {
    operations.into_iter().fold(0i32, |field, op| {
        let bit = op.id();
        debug_assert!(
            (0..32).contains(&bit),
            "an operation id fits a 32-bit field"
        );
        field | 1i32.wrapping_shl(bit as u32)
    })
}

/// The operations in a bitfield (Kafka's `Utils.from32BitField`), ids
/// Kafka does not define left out.
pub fn operations_in_bitfield(field: i32) -> Vec<AclOperation> {
    (0..32)
        .filter(|bit| field & 1i32.wrapping_shl(*bit as u32) != 0)
        .filter_map(|bit| AclOperation::from_id(bit as i8).ok())
        .collect()
}

/// The authorized-operations field (KIP-430) of `resource` of
/// `resource_type` for `principal` at `host`: the operations that apply to
/// the type which `authorize` allows, as Kafka's
/// `AuthHelper.authorizedOperations`. Without an authorizer (`rules` is
/// `None`) every operation that applies, as Kafka answers.
pub fn authorized_operations<'b>(
    bindings: impl IntoIterator<Item = &'b AclBinding> + Clone,
    rules: Option<&AuthorizerRules>,
    principal: &str,
    host: &str,
    resource_type: ResourceType,
    resource: &str,
) -> i32 {
    let allowed = resource_type.supported_operations().iter().filter(|op| {
        let Some(rules) = rules else {
            return true;
        };
        let action = Action {
            principal,
            host,
            operation: **op,
            resource_type,
            resource,
        };
        authorize(bindings.clone(), rules, &action)
    });
    operations_bitfield(allowed.copied())
}

/// Kafka's ANY (1): a filter field that matches every value.
pub const ANY_ID: i8 = 1;
/// Kafka's MATCH pattern type (2): a filter matching the bindings that
/// would apply to the named resource.
pub const MATCH_ID: i8 = 2;

/// One ACL: who may (or may not) do what on which resources.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `User:alice`, or `User:*` for every principal.
    pub principal: String,
    /// A client address as the broker sees it (`10.0.0.7`), or `*`.
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl AclBinding {
    /// Why Kafka would refuse to create this binding, if it would.
    pub fn invalid_reason(&self) -> Option<String> {
        if self.resource_name.is_empty() {
            return Some("Resource name should not be empty".into());
        }
        if !self.principal.contains(':') {
            return Some(format!(
                "Could not parse principal from `{}` (no colon is present separating the principal type from the principal name)",
                self.principal
            ));
        }
        if self.host.is_empty() {
            return Some("Host should not be empty".into());
        }
        None
    }

    /// Whether this binding's pattern covers `resource` of `resource_type`.
    pub fn covers(&self, resource_type: ResourceType, resource: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == resource || self.resource_name == WILDCARD_RESOURCE
                }
                PatternType::Prefixed => resource.starts_with(&self.resource_name),
            }
    }

    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == ANY_PRINCIPAL)
            && (self.host == host || self.host == ANY_HOST)
    }
}

/// How a filter matches resource names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatternFilter {
    /// ANY: either pattern type, the name equal (or any name).
    Any,
    /// MATCH: the bindings that apply to the named resource.
    Match,
    Exactly(PatternType),
}

/// A DescribeAcls or DeleteAcls filter: `None` fields match every value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<AclOperation>,
    pub permission: Option<AclPermission>,
}

impl AclFilter {
    /// From the wire's fields, with ANY (1) for "every value" and MATCH (2)
    /// for the pattern type; UNKNOWN and undefined ids are errors.
    pub fn from_wire(
        resource_type: i8,
        resource_name: Option<String>,
        pattern_type: i8,
        principal: Option<String>,
        host: Option<String>,
        operation: i8,
        permission: i8,
    ) -> Result<AclFilter, InvalidAclField> {
        fn any_or<T>(
            id: i8,
            from: fn(i8) -> Result<T, InvalidAclField>,
        ) -> Result<Option<T>, InvalidAclField> {
            if id == ANY_ID {
                Ok(None)
            } else {
                from(id).map(Some)
            }
        }
        let pattern = match pattern_type {
            ANY_ID => PatternFilter::Any,
            MATCH_ID => PatternFilter::Match,
            id => PatternFilter::Exactly(PatternType::from_id(id)?),
        };
        Ok(AclFilter {
            resource_type: any_or(resource_type, ResourceType::from_id)?,
            resource_name,
            pattern,
            principal,
            host,
            operation: any_or(operation, AclOperation::from_id)?,
            permission: any_or(permission, AclPermission::from_id)?,
        })
    }

    /// Whether `binding` matches this filter (Kafka's AclBindingFilter).
    pub fn matches(&self, binding: &AclBinding) -> bool {
        let field = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        self.resource_type
            .is_none_or(|t| t == binding.resource_type)
            && self.matches_name(binding)
            && field(&self.principal, &binding.principal)
            && field(&self.host, &binding.host)
            && self.operation.is_none_or(|o| o == binding.operation)
            && self.permission.is_none_or(|p| p == binding.permission)
    }

    fn matches_name(&self, binding: &AclBinding) -> bool {
        let Some(name) = &self.resource_name else {
            return match &self.pattern {
                PatternFilter::Exactly(p) => *p == binding.pattern_type,
                PatternFilter::Any | PatternFilter::Match => true,
            };
        };
        match &self.pattern {
            PatternFilter::Any => binding.resource_name == *name,
            PatternFilter::Exactly(p) => {
                *p == binding.pattern_type && binding.resource_name == *name
            }
            PatternFilter::Match => binding.covers(binding.resource_type, name),
        }
    }
}

/// Who asks, from where, to do what, on which resource.
#[derive(Debug, Clone, Copy)]
pub struct Action<'a> {
    pub principal: &'a str,
    pub host: &'a str,
    pub operation: AclOperation,
    pub resource_type: ResourceType,
    pub resource: &'a str,
}

/// The authorizer's settings (Kafka's keys): `super.users` and
/// `allow.everyone.if.no.acl.found`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerRules {
    pub super_users: Vec<String>,
    pub allow_if_no_acl: bool,
}

/// Whether `action` is allowed by `bindings` under `rules`.
pub fn authorize<'b>(
    bindings: impl IntoIterator<Item = &'b AclBinding>,
    rules: &AuthorizerRules,
    action: &Action<'_>,
) -> bool {
    decide(
        bindings,
        rules,
        action,
        |b| b.covers(action.resource_type, action.resource),
        |_| true,
    )
}

/// Whether `action.operation` is allowed on some resource of
/// `action.resource_type` (`action.resource` is unused): Kafka's
/// authorizeByResourceType, which InitProducerId uses (Write on any topic
/// lets a producer be idempotent, KIP-679). Allowed when an ALLOW binding
/// applies and no DENY of every resource (literal `*`) does; a resource
/// type no binding names follows `allow_if_no_acl`.
pub fn authorize_any<'b>(
    bindings: impl IntoIterator<Item = &'b AclBinding>,
    rules: &AuthorizerRules,
    action: &Action<'_>,
) -> bool {
    let denies_everything = |b: &AclBinding| {
        b.pattern_type == PatternType::Literal && b.resource_name == WILDCARD_RESOURCE
    };
    decide(
        bindings,
        rules,
        action,
        |b| b.resource_type == action.resource_type,
        denies_everything,
    )
}

/// The decision over the bindings `in_scope` selects: super users first,
/// then a matching DENY that `deny_counts` wins, then any matching ALLOW;
/// no binding in scope at all follows `allow_if_no_acl`.
fn decide<'b>(
    bindings: impl IntoIterator<Item = &'b AclBinding>,
    rules: &AuthorizerRules,
    action: &Action<'_>,
    in_scope: impl Fn(&AclBinding) -> bool,
    deny_counts: impl Fn(&AclBinding) -> bool,
) -> bool {
    if rules.super_users.iter().any(|u| u == action.principal) {
        return true;
    }
    let mut any_binding = false;
    let mut allowed = false;
    for binding in bindings.into_iter().filter(|b| in_scope(b)) {
        any_binding = true;
        if !binding.applies_to(action.principal, action.host) {
            continue;
        }
        match binding.permission {
            AclPermission::Deny
                if deny_counts(binding) && denies(binding.operation, action.operation) =>
            {
                return false
            }
            AclPermission::Allow if allows(binding.operation, action.operation) => allowed = true,
            _ => {}
        }
    }
    allowed || (!any_binding && rules.allow_if_no_acl)
}

/// A DENY of `granted` denies `wanted`: the same operation, or ALL.
fn denies(granted: AclOperation, wanted: AclOperation) -> bool {
    granted == AclOperation::All || granted == wanted
}

/// An ALLOW of `granted` allows `wanted`, with Kafka's implications.
fn allows(granted: AclOperation, wanted: AclOperation) -> bool {
    use AclOperation::*;
    granted == All
        || granted == wanted
        || (wanted == Describe && matches!(granted, Read | Write | Delete | Alter))
        || (wanted == DescribeConfigs && granted == AlterConfigs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
        principal: &str,
        operation: AclOperation,
        permission: AclPermission,
    ) -> AclBinding {
        AclBinding {
            resource_type,
            resource_name: name.into(),
            pattern_type,
            principal: principal.into(),
            host: ANY_HOST.into(),
            operation,
            permission,
        }
    }

    fn action<'a>(principal: &'a str, operation: AclOperation, resource: &'a str) -> Action<'a> {
        Action {
            principal,
            host: "10.0.0.7",
            operation,
            resource_type: ResourceType::Topic,
            resource,
        }
    }

    use AclOperation::*;
    use AclPermission::*;
    use PatternType::*;
    use ResourceType::Topic;

    #[test]
    fn deny_wins_and_allows_imply_describe() {
        let acls = vec![
            binding(Topic, "orders", Literal, "User:alice", Read, Allow),
            binding(Topic, "orders", Literal, "User:alice", Write, Deny),
            binding(Topic, "pay", Prefixed, ANY_PRINCIPAL, Write, Allow),
            binding(Topic, "payroll", Literal, "User:bob", All, Deny),
        ];
        let rules = AuthorizerRules::default();
        let ok = |p, o, r| authorize(&acls, &rules, &action(p, o, r));
        assert!(ok("User:alice", Read, "orders"));
        assert!(
            ok("User:alice", Describe, "orders"),
            "Read implies Describe"
        );
        assert!(!ok("User:alice", Write, "orders"), "denied");
        assert!(!ok("User:bob", Read, "orders"), "no ACL for bob");
        assert!(ok("User:bob", Write, "payments"), "prefixed, any principal");
        assert!(
            !ok("User:bob", Write, "payroll"),
            "DENY ALL wins over the prefixed ALLOW"
        );
        assert!(ok("User:carol", Write, "payroll"));
        assert!(
            !ok("User:alice", Read, "unnamed"),
            "no ACL and allow_if_no_acl off"
        );
        let open = AuthorizerRules {
            allow_if_no_acl: true,
            ..AuthorizerRules::default()
        };
        assert!(authorize(&acls, &open, &action("User:x", Read, "unnamed")));
        assert!(
            !authorize(&acls, &open, &action("User:x", Read, "orders")),
            "orders has ACLs"
        );
        let admins = AuthorizerRules {
            super_users: vec!["User:bob".into()],
            ..AuthorizerRules::default()
        };
        assert!(authorize(
            &acls,
            &admins,
            &action("User:bob", Write, "payroll")
        ));
    }

    #[test]
    fn any_resource_of_a_type() {
        let rules = AuthorizerRules::default();
        let writer = binding(Topic, "logs-", Prefixed, "User:alice", Write, Allow);
        let deny_all = binding(Topic, "*", Literal, "User:alice", Write, Deny);
        let deny_one = binding(Topic, "secret", Literal, "User:alice", Write, Deny);
        let asks = action("User:alice", Write, "");
        assert!(authorize_any([&writer], &rules, &asks));
        assert!(authorize_any([&writer, &deny_one], &rules, &asks));
        assert!(!authorize_any([&writer, &deny_all], &rules, &asks));
        assert!(!authorize_any(
            [&writer],
            &rules,
            &action("User:bob", Write, "")
        ));
    }

    #[test]
    fn hosts_and_wildcard_resources() {
        let mut acl = binding(
            Topic,
            WILDCARD_RESOURCE,
            Literal,
            "User:alice",
            AlterConfigs,
            Allow,
        );
        acl.host = "10.0.0.8".into();
        let rules = AuthorizerRules::default();
        assert!(!authorize(
            [&acl],
            &rules,
            &action("User:alice", AlterConfigs, "t")
        ));
        acl.host = "10.0.0.7".into();
        assert!(authorize(
            [&acl],
            &rules,
            &action("User:alice", AlterConfigs, "t")
        ));
        assert!(authorize(
            [&acl],
            &rules,
            &action("User:alice", DescribeConfigs, "t")
        ));
        assert!(!authorize(
            [&acl],
            &rules,
            &action("User:alice", Describe, "t")
        ));
    }

    #[test]
    fn filters_match_as_kafkas() {
        let literal = binding(Topic, "orders", Literal, "User:alice", Read, Allow);
        let prefixed = binding(Topic, "ord", Prefixed, "User:alice", Read, Allow);
        let wildcard = binding(Topic, "*", Literal, "User:bob", Write, Deny);
        let filter = |pattern: i8, name: Option<&str>| {
            AclFilter::from_wire(
                2,
                name.map(String::from),
                pattern,
                None,
                None,
                ANY_ID,
                ANY_ID,
            )
            .unwrap()
        };
        let matched = |f: &AclFilter| {
            [&literal, &prefixed, &wildcard]
                .iter()
                .filter(|b| f.matches(b))
                .count()
        };
        assert_eq!(matched(&filter(ANY_ID, None)), 3);
        assert_eq!(matched(&filter(ANY_ID, Some("orders"))), 1);
        assert_eq!(matched(&filter(MATCH_ID, Some("orders"))), 3);
        assert_eq!(matched(&filter(4, None)), 1, "prefixed only");
        assert_eq!(matched(&filter(3, Some("ord"))), 0);
        let alice = AclFilter {
            principal: Some("User:alice".into()),
            ..filter(ANY_ID, None)
        };
        assert_eq!(matched(&alice), 2);
        assert!(AclFilter::from_wire(0, None, ANY_ID, None, None, ANY_ID, ANY_ID).is_err());
    }

    fn ops(field: i32) -> Vec<AclOperation> {
        let mut ops = operations_in_bitfield(field);
        ops.sort();
        ops
    }

    #[test]
    fn bitfields_are_kafkas() {
        // Kafka's ids: Read 3, Write 4, Describe 8.
        assert_eq!(operations_bitfield([Read, Write, Describe]), 0b1_0001_1000);
        assert_eq!(operations_bitfield([]), 0);
        assert_eq!(ops(0b1_0001_1000), vec![Read, Write, Describe]);
        // Bits 0 and 1 (UNKNOWN, ANY) and undefined ids are not operations.
        assert_eq!(ops(0b11 | 1 << 20), Vec::<AclOperation>::new());
        assert_eq!(AUTHORIZED_OPERATIONS_NOT_ASKED, -2147483648);
        for resource_type in [Topic, ResourceType::Group, ResourceType::Cluster] {
            let all = resource_type.supported_operations();
            assert!(!all.contains(&All), "ALL is never reported");
            let mut sorted = all.to_vec();
            sorted.sort();
            assert_eq!(ops(operations_bitfield(all.iter().copied())), sorted);
        }
    }

    #[test]
    fn authorized_operations_follow_the_acls() {
        let acls = vec![
            binding(Topic, "orders", Literal, "User:alice", Write, Allow),
            binding(Topic, "ord", Prefixed, "User:alice", AlterConfigs, Allow),
            binding(Topic, "*", Literal, "User:alice", Read, Allow),
            binding(Topic, "orders", Literal, "User:alice", Read, Deny),
            binding(
                ResourceType::Group,
                "readers",
                Literal,
                "User:alice",
                All,
                Allow,
            ),
        ];
        let rules = AuthorizerRules {
            super_users: vec!["User:admin".into()],
            allow_if_no_acl: false,
        };
        let field = |principal, resource_type, resource| {
            ops(authorized_operations(
                &acls,
                Some(&rules),
                principal,
                "10.0.0.7",
                resource_type,
                resource,
            ))
        };
        // Write implies Describe, AlterConfigs DescribeConfigs; the DENY
        // takes Read away although `*` allows it.
        assert_eq!(
            field("User:alice", Topic, "orders"),
            vec![Write, Describe, DescribeConfigs, AlterConfigs]
        );
        assert_eq!(field("User:alice", Topic, "other"), vec![Read, Describe]);
        assert_eq!(
            field("User:alice", ResourceType::Group, "readers"),
            vec![Read, Delete, Describe, DescribeConfigs, AlterConfigs],
            "All is every operation that applies to groups"
        );
        assert_eq!(
            field("User:bob", Topic, "orders"),
            Vec::<AclOperation>::new()
        );
        assert_eq!(
            field("User:admin", ResourceType::Cluster, CLUSTER_RESOURCE),
            vec![
                Create,
                Alter,
                Describe,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite
            ],
            "a super user has every operation of the type"
        );
        let no_authorizer = authorized_operations(&acls, None, "User:bob", "h", Topic, "orders");
        assert_eq!(
            no_authorizer,
            operations_bitfield(Topic.supported_operations().iter().copied())
        );
    }

    #[test]
    fn ids_round_trip_and_bindings_are_checked() {
        for id in 2..=14 {
            assert_eq!(AclOperation::from_id(id).unwrap().id(), id);
        }
        assert!(AclOperation::from_id(1).is_err());
        assert_eq!(
            AclOperation::from_name("describe_configs"),
            Some(AclOperation::DescribeConfigs)
        );
        assert_eq!(
            AclOperation::from_name("WRITE").map(AclOperation::name),
            Some("Write")
        );
        assert_eq!(AclOperation::from_name("Fly"), None);
        assert!(ResourceType::from_id(8).is_err());
        let mut acl = binding(Topic, "t", Literal, "alice", Read, Allow);
        assert!(acl.invalid_reason().unwrap().contains("principal"));
        acl.principal = "User:alice".into();
        assert_eq!(acl.invalid_reason(), None);
    }
}
