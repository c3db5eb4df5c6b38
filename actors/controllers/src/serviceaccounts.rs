//! The service account controller: a singleton on the active master that gives every
//! active namespace its `default` ServiceAccount (Kubernetes' `serviceaccounts`
//! controller) and its `kube-root-ca.crt` ConfigMap with the cluster CA (Kubernetes'
//! root-CA publisher), writing as `service-account-controller`. The decisions are
//! `navarch_logic::serviceaccounts::{missing, root_ca_changes}`'s; a pass runs when a
//! namespace, an account or one of those ConfigMaps changes, and again a second after a
//! write failed.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use navarch_actors::{
    ActorPath, Decision, EffectError, Effects, GroupHandle, SingletonLogic, SingletonRef,
    SingletonSpec, SnapshotSource, SourceError, SupervisorError, TapInfo,
};
use navarch_client::{Cache, CacheEvent, Client, Subscription};
use navarch_logic::serviceaccounts::{self, RootCa};
use navarch_model::identity::SERVICE_ACCOUNT_CONTROLLER;
use navarch_model::kinds::Kind;
use navarch_model::options::WriteOptions;
use tokio::task::JoinHandle;

use crate::context::Ctx;

fn namespaces() -> &'static Kind {
    navarch_client::kind("", "v1", "namespaces")
}

fn accounts() -> &'static Kind {
    navarch_client::kind("", "v1", "serviceaccounts")
}

fn config_maps() -> &'static Kind {
    navarch_client::kind("", "v1", "configmaps")
}

/// What the controller hears.
#[derive(Debug, Clone)]
pub enum AccountEvent {
    /// A namespace or an account changed: pass.
    Pass,
}

impl TapInfo for AccountEvent {
    fn message_type(&self) -> std::borrow::Cow<'static, str> {
        "Pass".into()
    }
}

/// What a pass asks for.
#[derive(Debug)]
pub enum Create {
    /// The `default` account of these namespaces.
    Accounts(Vec<String>),
    /// These `kube-root-ca.crt` ConfigMaps, with the CA.
    RootCa(Vec<RootCa>, Arc<str>),
}

/// Passes made, accounts and root-CA ConfigMaps asked for.
#[derive(Debug, Default)]
pub struct AccountState {
    passes: u64,
    created: u64,
    root_ca_writes: u64,
}

pub struct AccountLogic {
    namespaces: Cache,
    accounts: Cache,
    /// The `kube-root-ca.crt` ConfigMaps, and the CA they hold (`None`: none published).
    root_ca: Option<(Cache, Arc<str>)>,
}

impl AccountLogic {
    fn pass(&self, state: &mut AccountState) -> Vec<Create> {
        let namespaces = self.namespaces.list();
        let missing = serviceaccounts::missing(&namespaces, &self.accounts.list());
        state.passes += 1;
        state.created += missing.len() as u64;
        let mut out = Vec::new();
        if !missing.is_empty() {
            out.push(Create::Accounts(missing));
        }
        if let Some((cms, ca)) = &self.root_ca {
            let changes = serviceaccounts::root_ca_changes(&namespaces, &cms.list(), ca);
            state.root_ca_writes += changes.len() as u64;
            if !changes.is_empty() {
                out.push(Create::RootCa(changes, ca.clone()));
            }
        }
        out
    }
}

impl SingletonLogic for AccountLogic {
    type Snapshot = ();
    type State = AccountState;
    type Event = AccountEvent;
    type Action = Create;

    fn rebuild(&self, _: ()) -> AccountState {
        AccountState::default()
    }

    fn on_start(&self, state: &mut AccountState) -> Decision<Create> {
        Ok(self.pass(state))
    }

    fn handle(&self, state: &mut AccountState, _: AccountEvent) -> Decision<Create> {
        Ok(self.pass(state))
    }

    fn summary(&self, state: &AccountState) -> String {
        format!(
            "passes {}, default accounts asked for {}, root CA writes {}",
            state.passes, state.created, state.root_ca_writes
        )
    }
}

struct Synced(Vec<Cache>);

impl SnapshotSource<()> for Synced {
    fn load(&self) -> BoxFuture<'static, Result<(), SourceError>> {
        let caches = self.0.clone();
        Box::pin(async move {
            for c in caches {
                c.wait_synced()
                    .await
                    .map_err(|_| SourceError::Unavailable("a watch cache stopped".into()))?;
            }
            Ok(())
        })
    }
}

struct AccountEffects {
    client: Arc<dyn Client>,
    handle: Arc<OnceLock<SingletonRef<AccountLogic>>>,
}

impl Effects<Create> for Arc<AccountEffects> {
    fn perform(
        &self,
        _: &ActorPath,
        creates: Vec<Create>,
    ) -> BoxFuture<'static, Result<(), EffectError>> {
        let me = self.clone();
        Box::pin(async move {
            let mut retry = false;
            for create in creates {
                match create {
                    Create::Accounts(missing) => {
                        for ns in missing {
                            retry |= me.create_account(&ns).await;
                        }
                    }
                    Create::RootCa(changes, ca) => {
                        for change in changes {
                            retry |= me.write_root_ca(&change, &ca).await;
                        }
                    }
                }
            }
            if retry {
                crate::context::pass_again(
                    me.handle.clone(),
                    AccountEvent::Pass,
                    Duration::from_secs(1),
                );
            }
            Ok(())
        })
    }
}

impl AccountEffects {
    /// Creates the `default` account of `ns`; true when it should be tried again.
    async fn create_account(&self, ns: &str) -> bool {
        let account = serviceaccounts::default_account(ns);
        match self
            .client
            .create(accounts(), Some(ns), account, &WriteOptions::default())
            .await
        {
            Ok(_) => tracing::info!(namespace = %ns, "default service account created"),
            // Made meanwhile, or the namespace went (or is going).
            Err(e) if e.is_conflict() || e.is_not_found() || e.is_forbidden() => {}
            Err(e) => {
                tracing::warn!(namespace = %ns, error = %e, "default service account not created; retrying");
                return true;
            }
        }
        false
    }

    /// Creates or puts back one `kube-root-ca.crt`; true when it should be tried again.
    async fn write_root_ca(&self, change: &RootCa, ca: &str) -> bool {
        let w = WriteOptions::default();
        let (ns, r) = match change {
            RootCa::Create(ns) => {
                let cm = serviceaccounts::root_ca_config_map(ns, ca, None);
                (
                    ns,
                    self.client.create(config_maps(), Some(ns), cm, &w).await,
                )
            }
            RootCa::Update {
                namespace,
                resource_version,
            } => {
                let cm = serviceaccounts::root_ca_config_map(namespace, ca, Some(resource_version));
                let r = self
                    .client
                    .update(
                        config_maps(),
                        Some(namespace),
                        serviceaccounts::ROOT_CA,
                        None,
                        cm,
                        &w,
                    )
                    .await;
                (namespace, r)
            }
        };
        match r {
            Ok(_) => tracing::info!(namespace = %ns, "root CA config map written"),
            // Written meanwhile (the cache will show it and a pass follows), or the
            // namespace went.
            Err(e) if e.is_conflict() || e.is_not_found() || e.is_forbidden() => {}
            Err(e) => {
                tracing::warn!(namespace = %ns, error = %e, "root CA config map not written; retrying");
                return true;
            }
        }
        false
    }
}

/// The running service account controller of one activation.
pub struct ServiceAccountController {
    pub handle: SingletonRef<AccountLogic>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ServiceAccountController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountController").finish()
    }
}

impl Drop for ServiceAccountController {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl ServiceAccountController {
    /// Supervises the controller under `group` and feeds it.
    pub async fn start(
        group: &GroupHandle,
        ctx: &Ctx,
    ) -> Result<ServiceAccountController, SupervisorError> {
        let (ns, sa) = (ctx.cache(namespaces()), ctx.cache(accounts()));
        let root_ca = ctx.config.root_ca.as_ref().map(|ca| {
            let only = navarch_model::selector::FieldSelector::parse(
                "ConfigMap",
                &format!("metadata.name={}", serviceaccounts::ROOT_CA),
            )
            .expect("a valid field selector");
            let cms = ctx
                .caches
                .scoped(navarch_client::Scope::kind(config_maps()).fields(only));
            (cms, Arc::<str>::from(ca.as_str()))
        });
        let mut synced = vec![ns.clone(), sa.clone()];
        // Accounts and namespaces matter when they come and go; a root CA ConfigMap also
        // when someone changes it.
        let mut subs = vec![(ns.subscribe(), false), (sa.subscribe(), false)];
        if let Some((cms, _)) = &root_ca {
            synced.push(cms.clone());
            subs.push((cms.subscribe(), true));
        }
        let me = Arc::new(OnceLock::new());
        let spec = SingletonSpec::new(
            "service-account-controller",
            AccountLogic {
                namespaces: ns,
                accounts: sa,
                root_ca,
            },
            Arc::new(Synced(synced)),
        )
        .effects(Arc::new(Arc::new(AccountEffects {
            client: ctx.clients.client(&SERVICE_ACCOUNT_CONTROLLER),
            handle: me.clone(),
        })));
        let handle = group.singleton(spec).await?;
        let _ = me.set(handle.clone());
        let tasks = subs
            .into_iter()
            .map(|(s, updates)| tokio::spawn(feed(handle.clone(), s, updates)))
            .collect();
        Ok(ServiceAccountController { handle, tasks })
    }
}

async fn feed(handle: SingletonRef<AccountLogic>, mut sub: Subscription, updates: bool) {
    while let Some(event) = sub.recv().await {
        let worth = updates || !matches!(event, CacheEvent::Updated { .. });
        if worth && handle.send(AccountEvent::Pass).await.is_err() {
            return;
        }
    }
}
