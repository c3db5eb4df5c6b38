//! The service account controller: a singleton on the active master that gives every
//! active namespace its `default` ServiceAccount (Kubernetes' `serviceaccounts`
//! controller), writing as `service-account-controller`. The decision is
//! `navarch_logic::serviceaccounts::missing`'s; a pass runs when a namespace or an account
//! changes, and again a second after a write failed.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use navarch_actors::{
    ActorPath, Decision, EffectError, Effects, GroupHandle, SingletonLogic, SingletonRef,
    SingletonSpec, SnapshotSource, SourceError, SupervisorError, TapInfo,
};
use navarch_client::{Cache, CacheEvent, Client, Subscription};
use navarch_logic::serviceaccounts;
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

/// Create the `default` account of these namespaces.
#[derive(Debug)]
pub struct Create(Vec<String>);

/// Passes made and accounts asked for.
#[derive(Debug, Default)]
pub struct AccountState {
    passes: u64,
    created: u64,
}

pub struct AccountLogic {
    namespaces: Cache,
    accounts: Cache,
}

impl AccountLogic {
    fn pass(&self, state: &mut AccountState) -> Vec<Create> {
        let missing = serviceaccounts::missing(&self.namespaces.list(), &self.accounts.list());
        state.passes += 1;
        state.created += missing.len() as u64;
        if missing.is_empty() {
            Vec::new()
        } else {
            vec![Create(missing)]
        }
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
            "passes {}, default accounts asked for {}",
            state.passes, state.created
        )
    }
}

struct Synced(Cache, Cache);

impl SnapshotSource<()> for Synced {
    fn load(&self) -> BoxFuture<'static, Result<(), SourceError>> {
        let (a, b) = (self.0.clone(), self.1.clone());
        Box::pin(async move {
            let stopped = |_| SourceError::Unavailable("a watch cache stopped".into());
            a.wait_synced().await.map_err(stopped)?;
            b.wait_synced().await.map_err(stopped)
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
            for Create(missing) in creates {
                for ns in missing {
                    let account = serviceaccounts::default_account(&ns);
                    match me
                        .client
                        .create(accounts(), Some(&ns), account, &WriteOptions::default())
                        .await
                    {
                        Ok(_) => tracing::info!(namespace = %ns, "default service account created"),
                        // Made meanwhile, or the namespace went (or is going).
                        Err(e) if e.is_conflict() || e.is_not_found() || e.is_forbidden() => {}
                        Err(e) => {
                            tracing::warn!(namespace = %ns, error = %e, "default service account not created; retrying");
                            retry = true;
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
        let me = Arc::new(OnceLock::new());
        let spec = SingletonSpec::new(
            "service-account-controller",
            AccountLogic {
                namespaces: ns.clone(),
                accounts: sa.clone(),
            },
            Arc::new(Synced(ns.clone(), sa.clone())),
        )
        .effects(Arc::new(Arc::new(AccountEffects {
            client: ctx.clients.client(&SERVICE_ACCOUNT_CONTROLLER),
            handle: me.clone(),
        })));
        let subs = (ns.subscribe(), sa.subscribe());
        let handle = group.singleton(spec).await?;
        let _ = me.set(handle.clone());
        let tasks = vec![
            tokio::spawn(feed(handle.clone(), subs.0)),
            tokio::spawn(feed(handle.clone(), subs.1)),
        ];
        Ok(ServiceAccountController { handle, tasks })
    }
}

async fn feed(handle: SingletonRef<AccountLogic>, mut sub: Subscription) {
    while let Some(event) = sub.recv().await {
        let worth = !matches!(event, CacheEvent::Updated { .. });
        if worth && handle.send(AccountEvent::Pass).await.is_err() {
            return;
        }
    }
}
