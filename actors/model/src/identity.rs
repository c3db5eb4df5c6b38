//! Who navarch's own components are to the API server: the user name and groups each
//! authenticates as (in its client certificate, or as the `User` an in-process component
//! passes), and the bootstrap ClusterRole bound to it ([`crate::rbac::bootstrap`]).
//!
//! As in Kubernetes, the scheduler is the user `system:kube-scheduler`, and each controller
//! is its own service account in `kube-system` (`system:serviceaccount:kube-system:<name>`,
//! Kubernetes' `--use-service-account-credentials`), bound to `system:controller:<name>`.
//! Each controller's informers run under its own identity too, so its role includes the
//! reads they need.

use crate::authz::{User, GROUP_AUTHENTICATED, GROUP_SERVICE_ACCOUNTS};
use crate::rbac::Subject;

/// The namespace of the controllers' service accounts.
pub const CONTROLLER_NAMESPACE: &str = "kube-system";

/// One component identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Component {
    /// The component's short name: `kube-scheduler`, `deployment-controller`.
    pub name: &'static str,
    /// The user name it authenticates as.
    pub user: &'static str,
    /// The groups it carries (including `system:authenticated`).
    pub groups: &'static [&'static str],
    /// The bootstrap ClusterRole (and ClusterRoleBinding) granting its permissions.
    pub cluster_role: &'static str,
    /// For a controller: the name of its service account in [`CONTROLLER_NAMESPACE`].
    pub service_account: Option<&'static str>,
}

const CONTROLLER_GROUPS: &[&str] = &[
    GROUP_SERVICE_ACCOUNTS,
    "system:serviceaccounts:kube-system",
    GROUP_AUTHENTICATED,
];

/// The scheduler: places pods (binds them), reads pods and nodes, holds its Lease.
pub const SCHEDULER: Component = Component {
    name: "kube-scheduler",
    user: "system:kube-scheduler",
    groups: &[GROUP_AUTHENTICATED],
    cluster_role: "system:kube-scheduler",
    service_account: None,
};

/// The controller manager itself: the watch caches every controller of a master shares
/// read under this identity (as kube-controller-manager's shared informers do); it writes
/// nothing, each controller writes under its own.
pub const CONTROLLER_MANAGER: Component = Component {
    name: "kube-controller-manager",
    user: "system:kube-controller-manager",
    groups: &[GROUP_AUTHENTICATED],
    cluster_role: "system:kube-controller-manager",
    service_account: None,
};

const fn controller(
    name: &'static str,
    user: &'static str,
    cluster_role: &'static str,
) -> Component {
    Component {
        name,
        user,
        groups: CONTROLLER_GROUPS,
        cluster_role,
        service_account: Some(name),
    }
}

/// Deployments → ReplicaSets (rollouts, rollbacks, scaling).
pub const DEPLOYMENT_CONTROLLER: Component = controller(
    "deployment-controller",
    "system:serviceaccount:kube-system:deployment-controller",
    "system:controller:deployment-controller",
);
/// ReplicaSets → Pods.
pub const REPLICASET_CONTROLLER: Component = controller(
    "replicaset-controller",
    "system:serviceaccount:kube-system:replicaset-controller",
    "system:controller:replicaset-controller",
);
/// Deletes dependents by `ownerReferences` (Kubernetes' `generic-garbage-collector`).
pub const GARBAGE_COLLECTOR: Component = controller(
    "generic-garbage-collector",
    "system:serviceaccount:kube-system:generic-garbage-collector",
    "system:controller:generic-garbage-collector",
);
/// Empties and finalizes deleted namespaces.
pub const NAMESPACE_CONTROLLER: Component = controller(
    "namespace-controller",
    "system:serviceaccount:kube-system:namespace-controller",
    "system:controller:namespace-controller",
);
/// Force-deletes pods nobody else will end: orphans of deleted nodes, terminating pods on
/// out-of-service nodes or on none, terminated pods beyond the threshold (Kubernetes' PodGC).
pub const POD_GARBAGE_COLLECTOR: Component = controller(
    "pod-garbage-collector",
    "system:serviceaccount:kube-system:pod-garbage-collector",
    "system:controller:pod-garbage-collector",
);
/// Node lifecycle: marks nodes whose lease expired, evicts their pods (Kubernetes runs it as
/// `node-controller`).
pub const NODE_LIFECYCLE_CONTROLLER: Component = controller(
    "node-controller",
    "system:serviceaccount:kube-system:node-controller",
    "system:controller:node-controller",
);
/// Services → Endpoints.
pub const ENDPOINT_CONTROLLER: Component = controller(
    "endpoint-controller",
    "system:serviceaccount:kube-system:endpoint-controller",
    "system:controller:endpoint-controller",
);
/// Services → EndpointSlices.
pub const ENDPOINTSLICE_CONTROLLER: Component = controller(
    "endpointslice-controller",
    "system:serviceaccount:kube-system:endpointslice-controller",
    "system:controller:endpointslice-controller",
);

/// PodDisruptionBudgets → their status (`navarch_model::pdb::status`).
pub const DISRUPTION_CONTROLLER: Component = controller(
    "disruption-controller",
    "system:serviceaccount:kube-system:disruption-controller",
    "system:controller:disruption-controller",
);

/// Gives every namespace its `default` ServiceAccount.
pub const SERVICE_ACCOUNT_CONTROLLER: Component = controller(
    "service-account-controller",
    "system:serviceaccount:kube-system:service-account-controller",
    "system:controller:service-account-controller",
);

/// Every controller identity.
pub const CONTROLLERS: &[Component] = &[
    DEPLOYMENT_CONTROLLER,
    REPLICASET_CONTROLLER,
    GARBAGE_COLLECTOR,
    NAMESPACE_CONTROLLER,
    POD_GARBAGE_COLLECTOR,
    NODE_LIFECYCLE_CONTROLLER,
    ENDPOINT_CONTROLLER,
    ENDPOINTSLICE_CONTROLLER,
    DISRUPTION_CONTROLLER,
    SERVICE_ACCOUNT_CONTROLLER,
];

/// Every component identity: the scheduler, the controller manager, then the controllers.
pub const COMPONENTS: &[Component] = &[
    SCHEDULER,
    CONTROLLER_MANAGER,
    DEPLOYMENT_CONTROLLER,
    REPLICASET_CONTROLLER,
    GARBAGE_COLLECTOR,
    NAMESPACE_CONTROLLER,
    POD_GARBAGE_COLLECTOR,
    NODE_LIFECYCLE_CONTROLLER,
    ENDPOINT_CONTROLLER,
    ENDPOINTSLICE_CONTROLLER,
    DISRUPTION_CONTROLLER,
    SERVICE_ACCOUNT_CONTROLLER,
];

impl Component {
    /// The user the component is, as the authenticator would produce it.
    pub fn user_info(&self) -> User {
        User::new(
            self.user,
            self.groups.iter().map(|g| g.to_string()).collect(),
        )
    }

    /// The subject its bootstrap ClusterRoleBinding names: its service account, or its user.
    pub fn subject(&self) -> Subject {
        match self.service_account {
            Some(sa) => Subject::service_account(CONTROLLER_NAMESPACE, sa),
            None => Subject::user(self.user),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::rule::service_account_user;

    #[test]
    fn identities_are_consistent() {
        assert_eq!(COMPONENTS.len(), CONTROLLERS.len() + 2);
        for c in CONTROLLERS {
            let sa = c.service_account.unwrap();
            assert_eq!(sa, c.name);
            assert_eq!(c.user, service_account_user(CONTROLLER_NAMESPACE, sa));
            assert_eq!(c.cluster_role, format!("system:controller:{sa}"));
            assert!(c.subject().applies_to(&c.user_info(), ""));
            assert!(c.groups.contains(&"system:serviceaccounts:kube-system"));
        }
        assert!(SCHEDULER.subject().applies_to(&SCHEDULER.user_info(), ""));
        assert!(CONTROLLER_MANAGER
            .subject()
            .applies_to(&CONTROLLER_MANAGER.user_info(), ""));
        let mut names: Vec<&str> = COMPONENTS.iter().map(|c| c.user).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), COMPONENTS.len());
    }
}
