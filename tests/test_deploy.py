"""Deployment: the rendered Kubernetes manifests (validated offline against
the OpenAPI schemas, plus the project's own rules), the Grafana dashboard
against a live /metrics, and per-replica handles with two daemons."""
import json
import os
import re
import shutil
import socket
import subprocess

import numpy as np
import pytest
import yaml

import npystream
from conftest import BUILD, DAEMON, ROOT, http

DEPLOY = os.path.join(ROOT, "deploy")
KUSTOMIZATIONS = ["base", "overlays/cpu", "overlays/gpu", "overlays/scale", "sidecar"]
VALIDATOR = os.path.join(ROOT, "tests", "k8s")


def render(name):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl (with kustomize) is not installed")
    out = subprocess.run(["kubectl", "kustomize", os.path.join(DEPLOY, name)], check=True,
                         capture_output=True, text=True).stdout
    return out, [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def workload(docs):
    """The one Deployment or StatefulSet that runs npystreamd."""
    (w,) = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    return w


def client_service(docs):
    (service,) = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == "npystream"]
    return service


def pod_containers(deployment):
    spec = deployment["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def daemon_config(docs):
    (cm,) = by_kind(docs, "ConfigMap")
    return json.loads(cm["data"]["npystream.json"])


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_manifests_validate_against_the_kubernetes_schemas(name):
    text, docs = render(name)
    kinds = {d["kind"] for d in docs}
    assert {"Service", "ConfigMap", "PodDisruptionBudget"} <= kinds
    assert kinds & {"Deployment", "StatefulSet"}
    if not os.path.isdir(os.path.join(VALIDATOR, "node_modules")):
        pytest.skip("tests/k8s/node_modules missing (make test runs npm ci there)")
    r = subprocess.run(["node", os.path.join(VALIDATOR, "validate.mjs")], input=text,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("ok ") == len(docs)


def test_the_validator_rejects_a_broken_manifest():
    if not os.path.isdir(os.path.join(VALIDATOR, "node_modules")):
        pytest.skip("tests/k8s/node_modules missing (make test runs npm ci there)")
    text, _ = render("base")
    broken = text.replace("containerPort: 50051", "containerPort: grpc-port", 1)
    r = subprocess.run(["node", os.path.join(VALIDATOR, "validate.mjs")], input=broken,
                       capture_output=True, text=True)
    assert r.returncode == 1 and "INVALID apps/v1 Deployment" in r.stdout, r.stdout


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_manifests_follow_the_projects_rules(name, tmp_path):
    _, docs = render(name)
    deployment = workload(docs)
    template = deployment["spec"]["template"]
    labels = template["metadata"]["labels"]
    # Selectors (Deployment, Service, PDB, ServiceMonitor) match the pods.
    for selector in [deployment["spec"]["selector"]["matchLabels"],
                     *(s["spec"]["selector"] for s in by_kind(docs, "Service")),
                     *(p["spec"]["selector"]["matchLabels"] for p in by_kind(docs, "PodDisruptionBudget"))]:
        assert selector.items() <= labels.items(), (selector, labels)
    service = client_service(docs)
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    for monitor in by_kind(docs, "ServiceMonitor"):
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= service_ports
    # Handles are per replica: without relaying peers, a client stays on one.
    peers = any(e["name"] == "NPYSTREAM_PEER_ADDRESS"
                for c in pod_containers(deployment) for e in c.get("env", []))
    assert service["spec"]["sessionAffinity"] == ("None" if peers else "ClientIP")
    (daemon,) = [c for c in pod_containers(deployment) if c["name"] == "npystreamd"]
    declared = {p["name"] for p in daemon["ports"]} | {p["containerPort"] for p in daemon["ports"]}
    for svc in by_kind(docs, "Service"):
        for sp in svc["spec"]["ports"]:
            assert sp["targetPort"] in declared, (svc["metadata"]["name"], sp)
    # Probes point at declared ports; liveness is the gRPC health service.
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        p = daemon[probe]
        port = (p.get("httpGet") or p.get("grpc"))["port"]
        assert port in declared, (probe, port)
    assert "grpc" in daemon["livenessProbe"] and daemon["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Every container has limits; the daemon runs locked down.
    for c in pod_containers(deployment):
        assert {"cpu", "memory"} <= c["resources"]["limits"].keys(), c["name"]
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
    pod_sc = template["spec"]["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["seccompProfile"]["type"] == "RuntimeDefault"
    # The grace period outlasts the drain.
    config = daemon_config(docs)
    assert template["spec"]["terminationGracePeriodSeconds"] > config["drain-timeout"]
    # Every config key is a flag the daemon knows, with a valid value.
    path = tmp_path / "npystream.json"
    path.write_text(json.dumps(config))
    mounted = {m["mountPath"] for m in daemon["volumeMounts"]}
    assert os.path.dirname(daemon["args"][daemon["args"].index("--config") + 1]) in mounted
    extra = [a for a in daemon["args"] if a.startswith("--") and a != "--config"
             and "=" in a]
    r = subprocess.run([DAEMON, "--config", str(path), *extra, "--check-config"],
                       capture_output=True, text=True, env={})
    assert r.returncode == 0 and "config ok" in r.stdout, r.stderr


def test_scale_overlay_makes_the_replicas_one_service(tmp_path):
    _, docs = render("overlays/scale")
    sts = workload(docs)
    assert sts["kind"] == "StatefulSet" and sts["spec"]["podManagementPolicy"] == "Parallel"
    labels = sts["spec"]["template"]["metadata"]["labels"]
    # The Service the pods' DNS names come from exists, is headless and
    # publishes only ready pods.
    (peers,) = [s for s in by_kind(docs, "Service")
                if s["metadata"]["name"] == sts["spec"]["serviceName"]]
    assert peers["spec"]["clusterIP"] == "None"
    assert peers["spec"]["publishNotReadyAddresses"] is False
    assert peers["spec"]["selector"].items() <= labels.items()
    assert "sessionAffinity" not in client_service(docs)["spec"] or \
        client_service(docs)["spec"]["sessionAffinity"] == "None"
    (daemon,) = sts["spec"]["template"]["spec"]["containers"]
    env = [e["name"] for e in daemon["env"]]
    values = {e["name"]: e for e in daemon["env"]}
    assert values["NPYSTREAM_REPLICA_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert values["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env.index("POD_NAMESPACE") < env.index("NPYSTREAM_PEER_ADDRESS")  # $(...) needs it first
    template = values["NPYSTREAM_PEER_ADDRESS"]["value"]
    m = re.fullmatch(r"\{replica\}\.([a-z0-9-]+)\.\$\(POD_NAMESPACE\)\.svc\.cluster\.local:(\d+)",
                     template)
    assert m and m.group(1) == peers["metadata"]["name"], template
    (grpc_port,) = [p for p in peers["spec"]["ports"] if p["name"] == "grpc"]
    assert int(m.group(2)) == grpc_port["port"]
    (container_grpc,) = [p for p in daemon["ports"] if p["name"] == grpc_port["targetPort"]]
    assert container_grpc["containerPort"] == grpc_port["port"]
    # The HPA scales this StatefulSet on CPU, which the pods request.
    (hpa,) = by_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                             "name": sts["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert "cpu" in daemon["resources"]["requests"]
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # The daemon accepts what the kubelet makes of the env.
    path = tmp_path / "npystream.json"
    path.write_text(json.dumps(daemon_config(docs)))
    r = subprocess.run([DAEMON, "--config", str(path), "--check-config"], capture_output=True,
                       text=True, env={"NPYSTREAM_REPLICA_ID": "npystream-0",
                                       "NPYSTREAM_PEER_ADDRESS":
                                           template.replace("$(POD_NAMESPACE)", "default")})
    assert r.returncode == 0 and "config ok" in r.stdout, r.stderr


def test_gpu_overlay_asks_for_a_gpu():
    _, docs = render("overlays/gpu")
    (deployment,) = by_kind(docs, "Deployment")
    (daemon,) = deployment["spec"]["template"]["spec"]["containers"]
    assert daemon["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert daemon["image"].startswith("npystream-gpu:")
    assert "--device=cuda:0" in daemon["args"]
    spec = deployment["spec"]["template"]["spec"]
    assert spec["nodeSelector"] and spec["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_sidecar_is_native_and_shares_memory_and_socket():
    _, docs = render("sidecar")
    (deployment,) = by_kind(docs, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    (daemon,) = spec["initContainers"]
    assert daemon["name"] == "npystreamd" and daemon["restartPolicy"] == "Always"
    apps = spec["containers"]
    assert [c["name"] for c in apps] == ["app"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["shm"]["emptyDir"]["medium"] == "Memory"
    config = daemon_config(docs)
    assert config["shm-dir"].startswith("/dev/shm/")
    sockets = [a for a in config["listen"] if a.startswith("unix://")]
    assert sockets
    for c in (daemon, apps[0]):
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert mounts["shm"] == "/dev/shm" and mounts["socket"] == "/run/npystream"
        assert mounts.get("models") == "/models"
    assert sockets[0].startswith("unix:///run/npystream/")
    # The app reaches the daemon on the socket, with the token.
    assert "unix:///run/npystream/" in " ".join(apps[0]["command"])
    assert any(e["name"] == "NPYSTREAM_TOKEN" for e in apps[0]["env"])
    # Same group: the app may read the daemon's 0640 tensor files.
    assert apps[0]["securityContext"]["runAsGroup"] == spec["securityContext"]["runAsGroup"]


def test_grafana_dashboard_queries_only_exported_metrics(make_daemon):
    daemon = make_daemon("--model-repository", os.path.join(BUILD, "models"))
    with open(os.path.join(DEPLOY, "dashboards", "npystream-grafana.json")) as f:
        board = json.load(f)
    exprs = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                exprs.append(node["expr"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(board)
    assert exprs, "the dashboard has no queries"
    # Work that makes every family appear (Prometheus omits empty ones): a
    # put and fetch, inferences, and a subscriber that never reads (drops).
    with daemon.client() as c:
        c.put(np.arange(10.0), name="x")
        c.fetch("x")
        sub = c.subscribe("demo", ["conv1"])
        it = iter(sub)
        x = np.zeros((1, 1, 28, 28), np.float32)
        c.infer("demo", {"x": x})
        next(it)  # subscribed: the next values wait unread, then replace each other
        for _ in range(5):
            c.infer("demo", {"x": x})
        sub.cancel()
    _, _, body = http(daemon, "/metrics")
    exported = set(re.findall(r"^# TYPE (\w+) ", body.decode(), re.M))
    used = {m for e in exprs for m in re.findall(r"\bnpystream_\w+", e)}
    missing = set()
    for m in used:
        base = re.sub(r"_(bucket|sum|count)$", "", m)
        if m not in exported and base not in exported:
            missing.add(m)
    assert not missing, f"dashboard queries metrics the daemon does not export: {missing}"


def test_handles_are_per_replica(make_daemon):
    a = make_daemon("--replica-id", "pod-a")
    b = make_daemon("--replica-id", "pod-b")
    with npystream.Client(a.target) as ca, npystream.Client(b.target) as cb:
        info = ca.put(np.arange(6))
        assert info.handle.endswith("~pod-a")
        with pytest.raises(npystream.FailedPreconditionError, match="replica 'pod-a'"):
            cb.fetch(info.handle)  # misrouted: told, not NOT_FOUND
        with pytest.raises(npystream.FailedPreconditionError, match="replica 'pod-a'"):
            cb.stat(info.handle)
        status, _, body = http(b, f"/v1/tensors/{info.handle}.npy")
        assert status == 400 and b"belongs to replica 'pod-a'" in body, (status, body)
        assert np.array_equal(ca.fetch(info.handle), np.arange(6))
        ca.release(info.handle)
        with pytest.raises(npystream.NotFoundError):  # expired or released: NOT_FOUND
            ca.fetch(info.handle)
        named = ca.put(np.ones(2), name="shared_name")  # a chosen name carries no owner
        assert named.handle == "shared_name"
        with pytest.raises(npystream.NotFoundError):
            cb.fetch("shared_name")


def test_replica_id_defaults_to_the_host_name(make_daemon):
    d = make_daemon()
    host = re.sub(r"[^A-Za-z0-9_.-]", "", socket.gethostname())[:63]
    with npystream.Client(d.target) as c:
        assert c.put(np.zeros(1)).handle.endswith("~" + host)


def test_dockerfile_gpu_branch_is_wired_though_unbuilt():
    """The GPU image cannot be built on these machines (no CUDA base image, no
    CUDA LibTorch); its branch of the Dockerfile is checked for structure."""
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        text = f.read()
    assert re.search(r"^ARG BASE=docker.io/library/debian:12$", text, re.M)
    assert re.search(r"^ARG LIBTORCH_URL=$", text, re.M)
    assert re.search(r"^FROM \$\{BASE\} AS runtime$", text, re.M)  # a CUDA runtime base fits here
    build_run = text[text.index("RUN --mount=type=cache"):text.index("FROM ${BASE}")]
    # With LIBTORCH_URL: the CUDA path on, that LibTorch found and shipped,
    # Debian's CPU libtorch dropped from the runtime packages.
    assert 'if [ -n "$LIBTORCH_URL" ]' in build_run
    assert "-DNPYSTREAM_CUDA=ON -DCMAKE_PREFIX_PATH=/opt/libtorch" in build_run
    assert "sed -i '/^libtorch/d' /build/runtime-packages.txt" in build_run
    assert "cp -a /opt/libtorch /stage/opt/" in build_run
    assert "COPY --from=build /stage/opt/ /opt/" in text
    assert "LD_LIBRARY_PATH=/opt/libtorch/lib" in text
    # The CPU default stays: CUDA off without LIBTORCH_URL.
    assert 'else CUDA_ARGS="-DNPYSTREAM_CUDA=OFF"' in build_run
    for must in ("USER 65532:65532", 'ENTRYPOINT ["npystreamd"]', "EXPOSE 50051 8080",
                 "HEALTHCHECK", "org.opencontainers.image.title"):
        assert must in text, must
