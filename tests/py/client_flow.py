"""Drives navarch's API with the official Kubernetes Python client; prints one JSON report.

Run by tests/tests/api_clients.rs with KUBECONFIG pointing at a master's admin kubeconfig.
"""
import json
import os
import threading

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=os.environ["KUBECONFIG"])
core = client.CoreV1Api()
apps = client.AppsV1Api()
report = {}
NS = "pyclient"

core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))


def pod(name, labels):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
    )


for i in range(3):
    core.create_namespaced_pod(NS, pod(f"p{i}", {"app": "py", "idx": str(i)}))

listed = core.list_namespaced_pod(NS, label_selector="app=py,idx in (0,2)")
report["selected"] = sorted(p.metadata.name for p in listed.items)
everything = core.list_namespaced_pod(NS)
list_rv = everything.metadata.resource_version
report["listed"] = sorted(p.metadata.name for p in everything.items)

# A watch from the list's resourceVersion sees only what happens after it.
seen = []
w = watch.Watch()


def writer():
    core.create_namespaced_pod(NS, pod("p3", {"app": "py"}))
    core.patch_namespaced_pod("p0", NS, {"metadata": {"labels": {"touched": "yes"}}})
    core.delete_namespaced_pod("p1", NS)


threading.Timer(1.0, writer).start()
last_rv = None
for ev in w.stream(core.list_namespaced_pod, NS, resource_version=list_rv, timeout_seconds=20):
    seen.append([ev["type"], ev["object"].metadata.name, ev["object"].metadata.resource_version])
    last_rv = ev["object"].metadata.resource_version
    if len(seen) >= 3:
        w.stop()
report["first_watch"] = seen

# Resume from the last resourceVersion seen: only later changes arrive, none twice.
seen2 = []
w2 = watch.Watch()
def writer2():
    core.create_namespaced_pod(NS, pod("p4", {"app": "py"}))
threading.Timer(1.0, writer2).start()
for ev in w2.stream(core.list_namespaced_pod, NS, resource_version=last_rv, timeout_seconds=20):
    seen2.append([ev["type"], ev["object"].metadata.name, ev["object"].metadata.resource_version])
    w2.stop()
report["resumed_watch"] = seen2

# A stale update is a 409 Conflict.
stale = core.read_namespaced_pod("p0", NS)
core.patch_namespaced_pod("p0", NS, {"metadata": {"labels": {"again": "1"}}})
stale.metadata.labels["lost"] = "update"
try:
    core.replace_namespaced_pod("p0", NS, stale)
    report["stale_update"] = "accepted"
except ApiException as e:
    report["stale_update"] = {"status": e.status, "reason": json.loads(e.body)["reason"]}

# Deployments through the apps client, and a 404 as an ApiException.
dep = client.V1Deployment(
    metadata=client.V1ObjectMeta(name="web"),
    spec=client.V1DeploymentSpec(
        replicas=2,
        selector=client.V1LabelSelector(match_labels={"app": "web"}),
        template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels={"app": "web"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx")]),
        ),
    ),
)
created = apps.create_namespaced_deployment(NS, dep)
report["deployment_generation"] = created.metadata.generation
scale = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})
report["scaled_to"] = scale.spec.replicas
try:
    core.read_namespaced_pod("missing", NS)
except ApiException as e:
    report["missing"] = e.status
print(json.dumps(report))
