//! Errors as typed `Status`es: 404 NotFound (with the object's name in the details), 409
//! AlreadyExists, 422 Invalid with field causes, 400 for a namespace that contradicts the
//! request; and 403 Forbidden for every write of a user without rights, which changes
//! nothing.

use navarch_model::options::{DeleteOptions, WriteOptions};
use navarch_model::patch::PatchType;
use navarch_model::ApiError;
use serde_json::json;

use super::{deployments, ensure, leases, pods, rv_of, Ctx, Outcome};
use crate::{Client, Subresource};

fn has_cause(e: &ApiError, field: &str) -> bool {
    e.details.causes.iter().any(|c| c.field == field)
}

/// Every refusal is the Status Kubernetes answers with.
pub async fn typed_errors(c: &dyn Client, ns: &str) -> Outcome {
    let x = Ctx::new(c, ns, "typed_errors");
    let wo = WriteOptions::default();
    let r = x.get(leases(), "missing").await;
    let e = x.refused("get of a missing object", r, 404, "NotFound")?;
    ensure!(
        x,
        e.details.name.as_deref() == Some("missing"),
        "404 details name {:?} (message {:?})",
        e.details.name,
        e.message
    );
    let r = x
        .delete(leases(), "missing", DeleteOptions::default())
        .await;
    x.refused("delete of a missing object", r, 404, "NotFound")?;

    x.create(leases(), x.lease("dup", json!({}))).await?;
    let r = c
        .create(leases(), Some(ns), x.lease("dup", json!({})), &wo)
        .await;
    let e = x.refused("create of an existing name", r, 409, "AlreadyExists")?;
    ensure!(
        x,
        e.details.name.as_deref() == Some("dup"),
        "409 details name {:?}",
        e.details.name
    );

    let r = c
        .create(
            leases(),
            Some(ns),
            x.lease("Not_A_Valid_Name", json!({})),
            &wo,
        )
        .await;
    let e = x.refused("create with an invalid name", r, 422, "Invalid")?;
    ensure!(
        x,
        has_cause(&e, "metadata.name"),
        "422 for an invalid name has causes {:?}",
        e.details.causes
    );
    let r = c
        .create(deployments(), Some(ns), x.deployment("negative", -1), &wo)
        .await;
    let e = x.refused("create with spec.replicas -1", r, 422, "Invalid")?;
    ensure!(
        x,
        has_cause(&e, "spec.replicas"),
        "422 for negative replicas has causes {:?}",
        e.details.causes
    );
    let r = x.get(deployments(), "negative").await;
    x.refused(
        "get of an object whose create was refused",
        r,
        404,
        "NotFound",
    )?;

    let mut elsewhere = x.lease("elsewhere", json!({}));
    elsewhere["metadata"]["namespace"] = json!(format!("{ns}-other"));
    let r = c.create(leases(), Some(ns), elsewhere, &wo).await;
    x.refused(
        "create with a metadata.namespace other than the request's",
        r,
        400,
        "BadRequest",
    )?;
    Ok(())
}

/// A user with no rights gets 403 Forbidden for every write (create, update, patch, status,
/// delete, binding), and nothing changes. `admin` sets up the objects in `ns`; `user` is
/// authenticated but has no role.
pub async fn unprivileged_writes_are_forbidden(
    admin: &dyn Client,
    user: &dyn Client,
    ns: &str,
) -> Outcome {
    let a = Ctx::new(admin, ns, "unprivileged_writes_are_forbidden");
    let u = Ctx::new(user, ns, "unprivileged_writes_are_forbidden");
    let wo = WriteOptions::default();
    let lease = a.create(leases(), a.lease("kept", json!({}))).await?;
    let dep = a.create(deployments(), a.deployment("kept", 0)).await?;
    a.create(pods(), a.pod("kept")).await?;

    let r = user
        .create(leases(), Some(ns), u.lease("intruder", json!({})), &wo)
        .await;
    u.refused("create by an unprivileged user", r, 403, "Forbidden")?;
    let mut changed = lease.clone();
    changed["spec"]["holderIdentity"] = json!("intruder");
    let r = user
        .update(leases(), Some(ns), "kept", None, changed, &wo)
        .await;
    u.refused("update by an unprivileged user", r, 403, "Forbidden")?;
    let r = u
        .patch(
            leases(),
            "kept",
            None,
            PatchType::Merge,
            json!({"spec": {"holderIdentity": "intruder"}}),
        )
        .await?;
    u.refused("patch by an unprivileged user", r, 403, "Forbidden")?;
    let mut status = dep.clone();
    status["status"] = json!({"collisionCount": 3});
    let r = user
        .update(
            deployments(),
            Some(ns),
            "kept",
            Some(Subresource::Status),
            status,
            &wo,
        )
        .await;
    u.refused("status update by an unprivileged user", r, 403, "Forbidden")?;
    let r = u
        .patch(
            deployments(),
            "kept",
            Some(Subresource::Scale),
            PatchType::Merge,
            json!({"spec": {"replicas": 9}}),
        )
        .await?;
    u.refused("scale patch by an unprivileged user", r, 403, "Forbidden")?;
    let r = user.bind(ns, "kept", "intruder-node").await;
    u.refused("binding by an unprivileged user", r, 403, "Forbidden")?;
    let r = u.delete(leases(), "kept", DeleteOptions::default()).await;
    u.refused("delete by an unprivileged user", r, 403, "Forbidden")?;

    let now = a.must_get(leases(), "kept").await?;
    ensure!(
        a,
        rv_of(&now) == rv_of(&lease),
        "a forbidden write changed the lease: {now}"
    );
    let d = a.must_get(deployments(), "kept").await?;
    ensure!(
        a,
        rv_of(&d) == rv_of(&dep),
        "a forbidden write changed the deployment: {d}"
    );
    let p = a.must_get(pods(), "kept").await?;
    ensure!(
        a,
        p["spec"]["nodeName"].is_null(),
        "a forbidden binding bound the pod: {}",
        p["spec"]
    );
    let r = a.get(leases(), "intruder").await;
    a.refused(
        "get of the object a forbidden create named",
        r,
        404,
        "NotFound",
    )?;
    Ok(())
}
