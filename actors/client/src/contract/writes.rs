//! Writes: optimistic concurrency, the three patch formats, the status and scale
//! subresources with Kubernetes' generation rules, and binding.

use navarch_model::options::{DeleteOptions, WriteOptions};
use navarch_model::patch::PatchType;
use serde_json::{json, Value};

use super::{deployments, ensure, leases, name_of, pods, rv_of, Ctx, Outcome};
use crate::{Client, Subresource};

fn generation(o: &Value) -> i64 {
    o["metadata"]["generation"].as_i64().unwrap_or(0)
}

fn container_names(o: &Value) -> Vec<String> {
    o["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| c["name"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// An update carrying the resourceVersion read succeeds and moves it; one carrying a stale
/// resourceVersion is a 409 Conflict and changes nothing; one without is unconditional.
pub async fn optimistic_concurrency(c: &dyn Client, ns: &str) -> Outcome {
    let x = Ctx::new(c, ns, "optimistic_concurrency");
    let wo = WriteOptions::default();
    let v1 = x.create(leases(), x.lease("u", json!({}))).await?;
    let mut body = v1.clone();
    body["spec"]["holderIdentity"] = json!("one");
    let r = c.update(leases(), Some(ns), "u", None, body, &wo).await;
    let v2 = x.ok("update with the current resourceVersion", r)?.object;
    ensure!(
        x,
        v2["spec"]["holderIdentity"] == "one",
        "update did not change spec: {v2}"
    );
    ensure!(
        x,
        rv_of(&v2) != rv_of(&v1) && !rv_of(&v2).is_empty(),
        "update did not move resourceVersion ({} -> {})",
        rv_of(&v1),
        rv_of(&v2)
    );
    let mut stale = v1.clone();
    stale["spec"]["holderIdentity"] = json!("two");
    let r = c.update(leases(), Some(ns), "u", None, stale, &wo).await;
    x.refused(
        &format!("update with the stale resourceVersion {}", rv_of(&v1)),
        r,
        409,
        "Conflict",
    )?;
    let now = x.must_get(leases(), "u").await?;
    ensure!(
        x,
        now["spec"]["holderIdentity"] == "one" && rv_of(&now) == rv_of(&v2),
        "a refused update changed the object: {now}"
    );
    let mut blind = v1.clone();
    blind["spec"]["holderIdentity"] = json!("three");
    if let Some(m) = blind["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    let r = c.update(leases(), Some(ns), "u", None, blind, &wo).await;
    let v3 = x.ok("update without a resourceVersion", r)?.object;
    ensure!(
        x,
        v3["spec"]["holderIdentity"] == "three",
        "an update without resourceVersion did not apply: {v3}"
    );
    let r = c
        .update(
            leases(),
            Some(ns),
            "nope",
            None,
            x.lease("nope", json!({})),
            &wo,
        )
        .await;
    x.refused("update of a missing object", r, 404, "NotFound")?;
    Ok(())
}

/// Merge patch (RFC 7386: `null` deletes, lists are replaced), JSON patch (RFC 6902, a
/// failed `test` is 422 and changes nothing) and strategic merge patch (containers merged
/// by name, `$patch: delete`) each do what their content type says; a patch pinning a stale
/// resourceVersion is a 409.
pub async fn patch_types(c: &dyn Client, ns: &str) -> Outcome {
    let x = Ctx::new(c, ns, "patch_types");
    let d = deployments();
    let v1 = x.create(d, x.deployment("p", 0)).await?;

    let r = x
        .patch(
            d,
            "p",
            None,
            PatchType::Merge,
            json!({"metadata": {"labels": {"x": "1", "gone": "soon"}}}),
        )
        .await?;
    x.ok("merge patch adding labels", r)?;
    let r = x
        .patch(
            d,
            "p",
            None,
            PatchType::Merge,
            json!({"metadata": {"labels": {"gone": null}}}),
        )
        .await?;
    let o = x.ok("merge patch deleting a label with null", r)?.object;
    ensure!(
        x,
        o["metadata"]["labels"]["x"] == "1" && o["metadata"]["labels"].get("gone").is_none(),
        "merge patch: labels are {}",
        o["metadata"]["labels"]
    );

    let r = x
        .patch(
            d,
            "p",
            None,
            PatchType::Json,
            json!([{"op": "test", "path": "/metadata/labels/x", "value": "1"},
                   {"op": "replace", "path": "/metadata/labels/x", "value": "2"}]),
        )
        .await?;
    let o = x.ok("JSON patch test+replace", r)?.object;
    ensure!(
        x,
        o["metadata"]["labels"]["x"] == "2",
        "JSON patch: label x is {}",
        o["metadata"]["labels"]["x"]
    );
    let r = x
        .patch(
            d,
            "p",
            None,
            PatchType::Json,
            json!([{"op": "test", "path": "/metadata/labels/x", "value": "1"},
                   {"op": "replace", "path": "/metadata/labels/x", "value": "3"}]),
        )
        .await?;
    x.refused("JSON patch whose test fails", r, 422, "Invalid")?;
    let now = x.must_get(d, "p").await?;
    ensure!(
        x,
        now["metadata"]["labels"]["x"] == "2",
        "a failed JSON patch changed the object: {}",
        now["metadata"]["labels"]
    );

    let add = json!({"spec": {"template": {"spec": {"containers": [{"name": "c2", "image": "busybox:2"}]}}}});
    let r = x
        .patch(d, "p", None, PatchType::StrategicMerge, add)
        .await?;
    let o = x.ok("strategic merge patch adding a container", r)?.object;
    ensure!(
        x,
        container_names(&o) == ["c", "c2"],
        "strategic merge patch merges containers by name: got {:?}",
        container_names(&o)
    );
    let del = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "$patch": "delete"}]}}}});
    let r = x
        .patch(d, "p", None, PatchType::StrategicMerge, del)
        .await?;
    let o = x.ok("strategic merge patch with $patch: delete", r)?.object;
    ensure!(
        x,
        container_names(&o) == ["c2"],
        "$patch: delete left containers {:?}",
        container_names(&o)
    );
    let replace = json!({"spec": {"template": {"spec": {"containers": [{"name": "c3", "image": "busybox:3"}]}}}});
    let r = x.patch(d, "p", None, PatchType::Merge, replace).await?;
    let o = x.ok("merge patch of the container list", r)?.object;
    ensure!(
        x,
        container_names(&o) == ["c3"],
        "a merge patch replaces lists: got {:?}",
        container_names(&o)
    );

    let r = x
        .patch(
            d,
            "p",
            None,
            PatchType::Merge,
            json!({"metadata": {"resourceVersion": rv_of(&v1), "labels": {"x": "4"}}}),
        )
        .await?;
    x.refused(
        "merge patch pinning a stale resourceVersion",
        r,
        409,
        "Conflict",
    )?;
    let r = x
        .patch(
            d,
            "missing",
            None,
            PatchType::Merge,
            json!({"metadata": {"labels": {"a": "b"}}}),
        )
        .await?;
    x.refused("patch of a missing object", r, 404, "NotFound")?;
    Ok(())
}

/// The status subresource: a create or a write of the main resource ignores `status`; a
/// write of `/status` ignores everything but `status`. `metadata.generation` starts at 1,
/// moves by one with each spec change, and not with metadata or status changes.
pub async fn status_subresource(c: &dyn Client, ns: &str) -> Outcome {
    let x = Ctx::new(c, ns, "status_subresource");
    let d = deployments();
    let wo = WriteOptions::default();
    let mut body = x.deployment("s", 0);
    body["status"] = json!({"replicas": 7, "collisionCount": 42});
    let v1 = x.create(d, body).await?;
    ensure!(
        x,
        generation(&v1) == 1,
        "generation after create: {}",
        generation(&v1)
    );
    ensure!(
        x,
        v1["status"]["collisionCount"].as_i64() != Some(42),
        "create kept the status it was given: {}",
        v1["status"]
    );

    let mut labelled = v1.clone();
    labelled["metadata"]["labels"]["touched"] = json!("yes");
    labelled["status"] = json!({"collisionCount": 42});
    let r = c.update(d, Some(ns), "s", None, labelled, &wo).await;
    let v2 = x
        .ok("update of the main resource (labels, status)", r)?
        .object;
    ensure!(
        x,
        generation(&v2) == 1,
        "a metadata-only update moved generation to {}",
        generation(&v2)
    );
    ensure!(
        x,
        v2["status"]["collisionCount"].as_i64() != Some(42),
        "an update of the main resource wrote status: {}",
        v2["status"]
    );

    let r = x
        .patch(
            d,
            "s",
            None,
            PatchType::Merge,
            json!({"spec": {"minReadySeconds": 5}, "status": {"collisionCount": 42}}),
        )
        .await?;
    let v3 = x.ok("patch of the main resource (spec, status)", r)?.object;
    ensure!(
        x,
        generation(&v3) == 2 && v3["spec"]["minReadySeconds"] == 5,
        "a spec change: generation {} (expected 2), minReadySeconds {}",
        generation(&v3),
        v3["spec"]["minReadySeconds"]
    );
    ensure!(
        x,
        v3["status"]["collisionCount"].as_i64() != Some(42),
        "a patch of the main resource wrote status: {}",
        v3["status"]
    );

    let mut status_write = v3.clone();
    status_write["spec"]["minReadySeconds"] = json!(9);
    status_write["metadata"]["labels"]["via-status"] = json!("yes");
    status_write["status"] = json!({"collisionCount": 7, "observedGeneration": 2});
    let r = c
        .update(
            d,
            Some(ns),
            "s",
            Some(Subresource::Status),
            status_write,
            &wo,
        )
        .await;
    let v4 = x.ok("update of /status", r)?.object;
    ensure!(
        x,
        v4["status"]["collisionCount"] == 7 && v4["status"]["observedGeneration"] == 2,
        "/status did not write status: {}",
        v4["status"]
    );
    ensure!(
        x,
        v4["spec"]["minReadySeconds"] == 5,
        "/status wrote spec (minReadySeconds {})",
        v4["spec"]["minReadySeconds"]
    );
    ensure!(
        x,
        generation(&v4) == 2,
        "a status write moved generation to {}",
        generation(&v4)
    );
    let r = x
        .patch(
            d,
            "s",
            Some(Subresource::Status),
            PatchType::Merge,
            json!({"spec": {"minReadySeconds": 11}, "status": {"collisionCount": 8}}),
        )
        .await?;
    let v5 = x.ok("patch of /status", r)?.object;
    ensure!(
        x,
        v5["status"]["collisionCount"] == 8 && v5["spec"]["minReadySeconds"] == 5,
        "patch of /status: status {} spec.minReadySeconds {}",
        v5["status"],
        v5["spec"]["minReadySeconds"]
    );
    let got = x.must_get(d, "s").await?;
    ensure!(
        x,
        got["status"]["collisionCount"] == 8
            && got["spec"]["minReadySeconds"] == 5
            && generation(&got) == 2,
        "stored: status {} spec.minReadySeconds {} generation {}",
        got["status"],
        got["spec"]["minReadySeconds"],
        generation(&got)
    );
    let r = c
        .update(d, Some(ns), "s", Some(Subresource::Status), v3.clone(), &wo)
        .await;
    x.refused(
        "update of /status with a stale resourceVersion",
        r,
        409,
        "Conflict",
    )?;
    Ok(())
}

/// The scale subresource: an autoscaling/v1 Scale (replicas, selector) that reads and
/// writes the object's replicas, by update or patch, with resourceVersion preconditions.
pub async fn scale_subresource(c: &dyn Client, ns: &str) -> Outcome {
    let x = Ctx::new(c, ns, "scale_subresource");
    let d = deployments();
    let wo = WriteOptions::default();
    let created = x.create(d, x.deployment("sc", 1)).await?;
    let r = c.get_scale(d, ns, "sc").await;
    let s1 = x.ok("get scale", r)?;
    ensure!(
        x,
        s1["kind"] == "Scale" && s1["apiVersion"] == "autoscaling/v1",
        "get scale answered kind {} apiVersion {}",
        s1["kind"],
        s1["apiVersion"]
    );
    ensure!(
        x,
        name_of(&s1) == "sc" && s1["spec"]["replicas"] == 1,
        "scale: name {} spec.replicas {}",
        name_of(&s1),
        s1["spec"]["replicas"]
    );
    ensure!(
        x,
        s1["status"]["selector"]
            .as_str()
            .is_some_and(|s| s.contains("app=sc")),
        "scale status.selector is {}",
        s1["status"]["selector"]
    );
    let mut s = s1.clone();
    s["spec"]["replicas"] = json!(3);
    let r = c
        .update(d, Some(ns), "sc", Some(Subresource::Scale), s, &wo)
        .await;
    let s2 = x.ok("update scale to 3", r)?.object;
    ensure!(
        x,
        s2["kind"] == "Scale" && s2["spec"]["replicas"] == 3,
        "update scale answered {s2}"
    );
    let dep = x.must_get(d, "sc").await?;
    ensure!(
        x,
        dep["spec"]["replicas"] == 3 && generation(&dep) == generation(&created) + 1,
        "after scaling: spec.replicas {} generation {} (was {})",
        dep["spec"]["replicas"],
        generation(&dep),
        generation(&created)
    );
    let r = x
        .patch(
            d,
            "sc",
            Some(Subresource::Scale),
            PatchType::Merge,
            json!({"spec": {"replicas": 4}}),
        )
        .await?;
    let s3 = x.ok("patch scale to 4", r)?.object;
    ensure!(x, s3["spec"]["replicas"] == 4, "patch scale answered {s3}");
    let dep = x.must_get(d, "sc").await?;
    ensure!(
        x,
        dep["spec"]["replicas"] == 4,
        "after patching scale: spec.replicas {}",
        dep["spec"]["replicas"]
    );
    let mut stale = s1.clone();
    stale["spec"]["replicas"] = json!(5);
    let r = c
        .update(d, Some(ns), "sc", Some(Subresource::Scale), stale, &wo)
        .await;
    x.refused(
        &format!("update scale with the stale resourceVersion {}", rv_of(&s1)),
        r,
        409,
        "Conflict",
    )?;
    let r = c.get_scale(d, ns, "missing").await;
    x.refused("get scale of a missing object", r, 404, "NotFound")?;
    Ok(())
}

/// Binding assigns an unbound pod to a node (`spec.nodeName`) once; binding it again is a
/// 409; the pod is then found by `spec.nodeName`.
pub async fn binding(c: &dyn Client, ns: &str) -> Outcome {
    let x = Ctx::new(c, ns, "binding");
    let node = format!("contract-node-{ns}");
    x.create(pods(), x.pod("b")).await?;
    let r = c.bind(ns, "b", &node).await;
    x.ok(&format!("bind b to {node}"), r)?;
    let got = x.must_get(pods(), "b").await?;
    ensure!(
        x,
        got["spec"]["nodeName"] == node.as_str(),
        "after binding, spec.nodeName is {}",
        got["spec"]["nodeName"]
    );
    let r = c.bind(ns, "b", &node).await;
    x.refused("binding again to the same node", r, 409, "Conflict")?;
    let r = c.bind(ns, "b", "another-node").await;
    x.refused("binding again to another node", r, 409, "Conflict")?;
    let got = x.must_get(pods(), "b").await?;
    ensure!(
        x,
        got["spec"]["nodeName"] == node.as_str(),
        "a refused binding moved the pod to {}",
        got["spec"]["nodeName"]
    );
    let on_node = x
        .list(
            pods(),
            navarch_model::options::ListOptions {
                field_selector: navarch_model::selector::FieldSelector::parse(
                    "Pod",
                    &format!("spec.nodeName={node}"),
                )
                .map_err(|e| x.fail(e.0))?,
                ..Default::default()
            },
        )
        .await?;
    ensure!(
        x,
        super::names(&on_node.items) == ["b"],
        "pods with spec.nodeName={node}: {:?}",
        super::names(&on_node.items)
    );
    let r = c.bind(ns, "missing", &node).await;
    x.refused("binding a missing pod", r, 404, "NotFound")?;
    // A bound pod is deleted at once with a zero grace period (no node will stop it).
    let r = x
        .delete(
            pods(),
            "b",
            DeleteOptions {
                grace_period_seconds: Some(0),
                ..DeleteOptions::default()
            },
        )
        .await;
    x.ok("delete the bound pod with gracePeriodSeconds 0", r)?;
    x.gone(pods(), "b").await
}
