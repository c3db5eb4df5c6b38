"""A PodDisruptionBudget and evictions with the official Kubernetes Python client; prints one
JSON report.

Run by tests/tests/api_kubectl_policy.rs with KUBECONFIG pointing at a master's admin
kubeconfig, once namespace `pypdb` holds the Running and Ready pods p0 and p1 (app=py).
"""
import json
import os

from kubernetes import client, config
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=os.environ["KUBECONFIG"])
core = client.CoreV1Api()
policy = client.PolicyV1Api()
NS = "pypdb"
report = {}

policy.create_namespaced_pod_disruption_budget(
    NS,
    client.V1PodDisruptionBudget(
        metadata=client.V1ObjectMeta(name="py"),
        spec=client.V1PodDisruptionBudgetSpec(
            min_available=1,
            selector=client.V1LabelSelector(match_labels={"app": "py"}),
        ),
    ),
)


def eviction(name):
    return client.V1Eviction(
        metadata=client.V1ObjectMeta(name=name, namespace=NS),
        delete_options=client.V1DeleteOptions(grace_period_seconds=0),
    )


core.create_namespaced_pod_eviction("p0", NS, eviction("p0"))
report["first"] = "evicted"
try:
    core.create_namespaced_pod_eviction("p1", NS, eviction("p1"))
    report["second"] = "evicted"
except ApiException as e:
    body = json.loads(e.body)
    report["second"] = {
        "status": e.status,
        "reason": body.get("reason"),
        "causes": [c.get("reason") for c in body.get("details", {}).get("causes", [])],
    }

pdb = policy.read_namespaced_pod_disruption_budget("py", NS)
s = pdb.status
report["status"] = {
    "current_healthy": s.current_healthy,
    "desired_healthy": s.desired_healthy,
    "expected_pods": s.expected_pods,
    "disruptions_allowed": s.disruptions_allowed,
    "disrupted": sorted((s.disrupted_pods or {}).keys()),
    "conditions": [[c.type, c.status, c.reason] for c in s.conditions or []],
}
report["pods"] = sorted(p.metadata.name for p in core.list_namespaced_pod(NS).items)
print(json.dumps(report))
