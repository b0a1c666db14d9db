//! Kafka's ACLs in the view: creating a binding and deleting the bindings
//! a filter matches, as Kafka's controller does (CreateAcls, DeleteAcls).
//! Pure, applied by `state::apply` on every quorum node alike; a change is
//! marked `SECURITY_TOUCHED`, so watchers get the security state only when
//! it changed.
use super::credentials::SECURITY_TOUCHED;
use super::model::ClusterView;
use super::state::{CommandError, Outcome};
use model::acl::{AclBinding, AclFilter};

/// Bindings at most: the security state is sent whole to every broker.
pub const ACLS_MAX: usize = 10_000;
/// A resource name, principal or host longer than this is refused.
const FIELD_BYTES_MAX: usize = 1024;

/// Adds `binding`; adding one that exists already succeeds, as in Kafka.
pub fn create_acl(
    view: &mut ClusterView,
    binding: &AclBinding,
    touched: &mut Vec<String>,
) -> Result<Outcome, CommandError> {
    if let Some(reason) = binding.invalid_reason() {
        return Err(CommandError::InvalidRequest(reason));
    }
    let longest = [&binding.resource_name, &binding.principal, &binding.host]
        .iter()
        .map(|f| f.len())
        .max()
        .unwrap_or(0);
    if longest > FIELD_BYTES_MAX {
        return Err(CommandError::InvalidRequest(format!(
            "ACL fields are limited to {FIELD_BYTES_MAX} bytes"
        )));
    }
    let acls = &mut view.security.acls;
    if acls.contains(binding) {
        return Ok(Outcome::Done);
    }
    if acls.len() >= ACLS_MAX {
        return Err(CommandError::InvalidRequest(format!(
            "there are {ACLS_MAX} ACLs already"
        )));
    }
    acls.insert(binding.clone());
    touched.push(SECURITY_TOUCHED.to_string());
    Ok(Outcome::Done)
}

/// Removes every binding `filter` matches and returns them.
pub fn delete_acls(
    view: &mut ClusterView,
    filter: &AclFilter,
    touched: &mut Vec<String>,
) -> Result<Outcome, CommandError> {
    let acls = &mut view.security.acls;
    let deleted: Vec<AclBinding> = acls.iter().filter(|b| filter.matches(b)).cloned().collect();
    for binding in &deleted {
        acls.remove(binding);
    }
    if !deleted.is_empty() {
        touched.push(SECURITY_TOUCHED.to_string());
    }
    Ok(Outcome::AclsDeleted(deleted))
}

/// Whether creating `binding` would leave the view as it is.
pub fn create_changes_nothing(view: &ClusterView, binding: &AclBinding) -> bool {
    view.security.acls.contains(binding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::acl::*;

    fn acl(name: &str, principal: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: PatternType::Literal,
            principal: principal.into(),
            host: ANY_HOST.into(),
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        }
    }

    #[test]
    fn create_is_idempotent_and_delete_returns_what_it_removed() {
        let mut view = ClusterView::default();
        let mut touched = Vec::new();
        create_acl(&mut view, &acl("a", "User:alice"), &mut touched).unwrap();
        create_acl(&mut view, &acl("a", "User:alice"), &mut touched).unwrap();
        create_acl(&mut view, &acl("b", "User:bob"), &mut touched).unwrap();
        assert_eq!(view.security.acls.len(), 2);
        assert!(create_acl(&mut view, &acl("c", "alice"), &mut touched).is_err());
        let alice = AclFilter {
            resource_type: None,
            resource_name: None,
            pattern: PatternFilter::Any,
            principal: Some("User:alice".into()),
            host: None,
            operation: None,
            permission: None,
        };
        let outcome = delete_acls(&mut view, &alice, &mut touched).unwrap();
        assert_eq!(outcome, Outcome::AclsDeleted(vec![acl("a", "User:alice")]));
        assert_eq!(view.security.acls.len(), 1);
        let again = delete_acls(&mut view, &alice, &mut touched).unwrap();
        assert_eq!(again, Outcome::AclsDeleted(vec![]));
    }
}
