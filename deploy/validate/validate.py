#!/usr/bin/env python3
"""Offline validation of the Kubernetes objects in deploy/: strict schemas plus the rules of SERVER.md.

1. Schema: every object is checked against the strict JSON schema of its apiVersion/kind for Kubernetes
   1.36 (schemas/kubernetes-1.36, generated from the npm package @kubernetes/client-node 2.0.1; see
   schemas/SOURCE.md). Strict: a field Kubernetes does not know is an error. A kind without a schema is
   an error too.
2. Consistency (what a schema cannot see), per Deployment and the objects around it:
   - the Deployment's selector matches its pod labels; each Service, PodDisruptionBudget selects them;
   - every Service targetPort is a container port (by name or number) of the selected pods;
   - startup, readiness and liveness probes are native gRPC probes on a declared container port, asking
     for a service the server reports ("" or a longnet.v1 service);
   - terminationGracePeriodSeconds > preStop sleep + the server's drain timeout, and the liveness probe
     tolerates at least the drain timeout;
   - nvidia.com/gpu requests equal limits; a CUDA device has a GPU;
   - the HPA targets the Deployment (apps/v1) and scales on a gauge the server exports
     (server/observability/metrics.cc), with minReplicas <= maxReplicas;
   - every LONGNET_* variable is a flag of the server (server/config/server_config.cc); LONGNET_PORT and
     LONGNET_METRICS_PORT are the container ports named grpc and metrics; the model directory is on a
     read-only mount; the API key file is on a mount of a Secret; a CPU memory budget fits the limit.

Command line: validate.py FILE_OR_DIR... (YAML files; exit 1 and one line per problem when any)
or validate.py --chart CHART [-f VALUES]... to validate a rendering of the chart.
"""

import argparse
import json
import math
import os
import re
import sys

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCHEMA_DIR = os.path.join(HERE, "schemas", "kubernetes-1.36")
SCHEMAS = {
    ("apps/v1", "Deployment"): "deployment-apps-v1.json",
    ("v1", "Service"): "service-v1.json",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscaler-autoscaling-v2.json",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudget-policy-v1.json",
    ("v1", "Secret"): "secret-v1.json",
    ("v1", "ServiceAccount"): "serviceaccount-v1.json",
}
HEALTH_SERVICES = {"", "longnet.v1.GenerationService", "longnet.v1.EncodingService",
                   "longnet.v1.TokenizerService", "longnet.v1.InfoService"}
DEFAULT_DRAIN_SECONDS = 30.0  # server_config.h's default, as docs/server.md lists it


def server_flags(repo=REPO):
    """The server's flags, read from the flag table in server_config.cc."""
    with open(os.path.join(repo, "server", "config", "server_config.cc"), encoding="utf-8") as f:
        text = f.read()
    flags = set(re.findall(r'_flag\(\s*"([a-z][a-z0-9-]*)"', text))
    if len(flags) < 10:
        raise RuntimeError("could not read the flag table of server/config/server_config.cc")
    return flags


def server_gauges(repo=REPO):
    """Names of the gauges the server exports, read from metrics.cc."""
    with open(os.path.join(repo, "server", "observability", "metrics.cc"), encoding="utf-8") as f:
        text = f.read()
    gauges = set(re.findall(r'gauge\(\s*\*registry,\s*"(longnet_[a-z_]+)"', text))
    if "longnet_queue_depth_requests" not in gauges:
        raise RuntimeError("could not read the gauges of server/observability/metrics.cc")
    return gauges


def env_name(flag):
    return "LONGNET_" + flag.upper().replace("-", "_")


_schema_cache = {}


def schema_for(api_version, kind):
    name = SCHEMAS.get((api_version, kind))
    if name is None:
        return None
    if name not in _schema_cache:
        with open(os.path.join(SCHEMA_DIR, name), encoding="utf-8") as f:
            _schema_cache[name] = jsonschema.Draft7Validator(json.load(f))
    return _schema_cache[name]


def describe(obj):
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind', '?')}/{meta.get('name', '?')}"


def schema_errors(obj):
    if not isinstance(obj, dict):
        return [f"not a Kubernetes object: {obj!r:.60}"]
    validator = schema_for(obj.get("apiVersion"), obj.get("kind"))
    if validator is None:
        return [f"{describe(obj)}: no schema for apiVersion {obj.get('apiVersion')!r} kind {obj.get('kind')!r}"]
    out = []
    for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in e.absolute_path) or "(top)"
        out.append(f"{describe(obj)}: {path}: {e.message}")
    return out


def quantity(text):
    """A Kubernetes quantity as a number (bytes for memory, cores for cpu)."""
    m = re.fullmatch(r"([0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?", str(text))
    if not m:
        return None
    scale = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}[m.group(2)]
    return float(m.group(1)) * scale


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def container_env(container):
    return {e["name"]: e for e in container.get("env") or [] if "name" in e}


def env_value(container, name):
    entry = container_env(container).get(name)
    return None if entry is None else entry.get("value")


def prestop_sleep_seconds(container):
    pre = ((container.get("lifecycle") or {}).get("preStop")) or {}
    if "sleep" in pre:
        return float(pre["sleep"].get("seconds", 0))
    command = (pre.get("exec") or {}).get("command") or []
    if len(command) == 2 and os.path.basename(command[0]) == "sleep":
        try:
            return float(command[1])
        except ValueError:
            return None
    return 0.0 if not pre else None


def mount_for(container, path):
    """The volumeMount whose mountPath holds `path` (the longest match), or None."""
    best = None
    for m in container.get("volumeMounts") or []:
        mp = m.get("mountPath", "").rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best["mountPath"].rstrip("/")):
                best = m
    return best


def check_deployment(dep, objects, flags, gauges):
    problems = []
    name = describe(dep)
    spec = dep.get("spec") or {}
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    pod = template.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    if not selects(selector, labels):
        problems.append(f"{name}: spec.selector.matchLabels {selector} does not match the pod labels {labels}")

    containers = pod.get("containers") or []
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    ports_by_name, port_numbers = {}, set()
    for c in containers:
        for p in c.get("ports") or []:
            port_numbers.add(p.get("containerPort"))
            if "name" in p:
                ports_by_name[p["name"]] = p.get("containerPort")

    grace = pod.get("terminationGracePeriodSeconds", 30)
    if not isinstance(grace, (int, float)):
        grace = 0  # the schema reports the type; the rule below reports it as too short
    for c in containers:
        where = f"{name}: container {c.get('name')}"
        env = container_env(c)
        own_ports = {p.get("containerPort") for p in c.get("ports") or []}
        # probes
        for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = c.get(probe_name)
            if probe is None:
                problems.append(f"{where}: no {probe_name}")
                continue
            grpc = probe.get("grpc")
            if grpc is None:
                problems.append(f"{where}: {probe_name} is not a native gRPC probe")
                continue
            if grpc.get("port") not in own_ports:
                problems.append(f"{where}: {probe_name} port {grpc.get('port')} is not a declared container "
                                f"port ({sorted(own_ports)})")
            if grpc.get("service", "") not in HEALTH_SERVICES:
                problems.append(f"{where}: {probe_name} asks health for service {grpc.get('service')!r}, "
                                f"which the server does not report")
        # drain and grace period
        drain = DEFAULT_DRAIN_SECONDS
        if env_value(c, "LONGNET_DRAIN_TIMEOUT") not in (None, ""):
            drain = float(env_value(c, "LONGNET_DRAIN_TIMEOUT"))
        sleep = prestop_sleep_seconds(c)
        if sleep is None:
            problems.append(f"{where}: preStop is neither a sleep action nor exec [sleep, N]")
            sleep = 0.0
        if not grace > sleep + drain:
            problems.append(f"{where}: terminationGracePeriodSeconds {grace} is not longer than the preStop "
                            f"sleep {sleep:g} s + the drain timeout {drain:g} s")
        live = c.get("livenessProbe") or {}
        if live and live.get("periodSeconds", 10) * live.get("failureThreshold", 3) < drain:
            problems.append(f"{where}: the liveness probe gives up after "
                            f"{live.get('periodSeconds', 10) * live.get('failureThreshold', 3)} s, within the "
                            f"drain timeout {drain:g} s")
        # environment
        known = {env_name(f) for f in flags}
        for var in env:
            if var.startswith("LONGNET_") and var not in known and var != "LONGNET_CPU_ISA":
                problems.append(f"{where}: {var} is not a flag of longnet-server")
        for var, port_name in (("LONGNET_PORT", "grpc"), ("LONGNET_METRICS_PORT", "metrics")):
            value = env_value(c, var)
            if value is None:
                problems.append(f"{where}: {var} is not set")
            elif str(ports_by_name.get(port_name)) != str(value):
                problems.append(f"{where}: {var}={value} but the container port named {port_name} is "
                                f"{ports_by_name.get(port_name)}")
        model = env_value(c, "LONGNET_MODEL")
        if model:
            mount = mount_for(c, model)
            if mount is None:
                problems.append(f"{where}: LONGNET_MODEL {model} is on no volume mount")
            elif not mount.get("readOnly"):
                problems.append(f"{where}: the model volume mount {mount.get('mountPath')} is not readOnly")
        keys = env_value(c, "LONGNET_API_KEY_FILE")
        if keys:
            mount = mount_for(c, keys)
            volume = volumes.get(mount.get("name")) if mount else None
            if volume is None or "secret" not in volume:
                problems.append(f"{where}: LONGNET_API_KEY_FILE {keys} is not on a mounted Secret volume")
        # resources
        resources = c.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        for key in set(requests) | set(limits):
            if key.startswith("nvidia.com/") and str(requests.get(key)) != str(limits.get(key)):
                problems.append(f"{where}: {key} requests {requests.get(key)} != limits {limits.get(key)}")
        device = env_value(c, "LONGNET_DEVICE") or "auto"
        if device.startswith("cuda") and not limits.get("nvidia.com/gpu"):
            problems.append(f"{where}: LONGNET_DEVICE={device} but no nvidia.com/gpu is requested")
        budget = env_value(c, "LONGNET_MEMORY_BUDGET_MB")
        if device == "cpu" and budget and "memory" in limits:
            limit = quantity(limits["memory"])
            if limit is not None and int(budget) * 2**20 >= limit:
                problems.append(f"{where}: LONGNET_MEMORY_BUDGET_MB {budget} does not fit the memory limit "
                                f"{limits['memory']}")
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                problems.append(f"{where}: volumeMount {m.get('name')} names no volume of the pod")

    # the objects around the Deployment
    for obj in objects:
        kind = obj.get("kind")
        where = describe(obj)
        spec_o = obj.get("spec") or {}
        if kind == "Service":
            if not selects(spec_o.get("selector") or {}, labels):
                continue
            for p in spec_o.get("ports") or []:
                target = p.get("targetPort", p.get("port"))
                if isinstance(target, str) and not target.isdigit():
                    if target not in ports_by_name:
                        problems.append(f"{where}: targetPort {target!r} is not a named container port of "
                                        f"{name} ({sorted(ports_by_name)})")
                elif int(target) not in port_numbers:
                    problems.append(f"{where}: targetPort {target} is not a container port of {name}")
        elif kind == "PodDisruptionBudget":
            sel = (spec_o.get("selector") or {}).get("matchLabels") or {}
            if (dep.get("metadata") or {}).get("name") == (obj.get("metadata") or {}).get("name") and \
                    not selects(sel, labels):
                problems.append(f"{where}: selector {sel} does not select the pods of {name}")
        elif kind == "HorizontalPodAutoscaler":
            ref = spec_o.get("scaleTargetRef") or {}
            if ref.get("name") != (dep.get("metadata") or {}).get("name"):
                continue
            if ref.get("kind") != "Deployment" or ref.get("apiVersion") != "apps/v1":
                problems.append(f"{where}: scaleTargetRef {ref} is not apps/v1 Deployment")
            if spec_o.get("minReplicas", 1) > spec_o.get("maxReplicas", 0):
                problems.append(f"{where}: minReplicas > maxReplicas")
            metrics = spec_o.get("metrics") or []
            if not metrics:
                problems.append(f"{where}: no metrics")
            for m in metrics:
                if m.get("type") != "Pods":
                    problems.append(f"{where}: metric type {m.get('type')} (expected a Pods queue metric)")
                    continue
                metric = ((m.get("pods") or {}).get("metric") or {}).get("name")
                if metric not in gauges:
                    problems.append(f"{where}: metric {metric!r} is not a gauge of longnet-server")
    if "spec" in dep and "replicas" in spec and any(
            o.get("kind") == "HorizontalPodAutoscaler" and
            ((o.get("spec") or {}).get("scaleTargetRef") or {}).get("name") == (dep.get("metadata") or {}).get("name")
            for o in objects):
        problems.append(f"{name}: sets replicas although an HPA scales it (each apply would reset the count)")
    return problems


def check_references(objects):
    """Every Service, PDB and HPA belongs to a Deployment of the set."""
    problems = []
    deployments = [o for o in objects if o.get("kind") == "Deployment"]
    pod_labels = [(((d.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
                  for d in deployments]
    names = {(d.get("metadata") or {}).get("name") for d in deployments}
    for obj in objects:
        kind, spec = obj.get("kind"), obj.get("spec") or {}
        if kind == "Service" and not any(selects(spec.get("selector") or {}, lb) for lb in pod_labels):
            problems.append(f"{describe(obj)}: selects the pods of no Deployment")
        if kind == "PodDisruptionBudget" and not any(
                selects((spec.get("selector") or {}).get("matchLabels") or {}, lb) for lb in pod_labels):
            problems.append(f"{describe(obj)}: selects the pods of no Deployment")
        if kind == "HorizontalPodAutoscaler" and (spec.get("scaleTargetRef") or {}).get("name") not in names:
            problems.append(f"{describe(obj)}: scaleTargetRef names no Deployment of the set")
    return problems


def validate_objects(objects, repo=REPO):
    """All problems of a set of objects (one application: a chart rendering, or deploy/k8s/<variant>)."""
    flags, gauges = server_flags(repo), server_gauges(repo)
    problems = []
    for obj in objects:
        problems += schema_errors(obj)
    objects = [o for o in objects if isinstance(o, dict)]
    for dep in (o for o in objects if o.get("kind") == "Deployment"):
        try:
            problems += check_deployment(dep, objects, flags, gauges)
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            # A shape the schema check already reports (a list where a map belongs, ...).
            problems.append(f"{describe(dep)}: cannot check the consistency rules ({type(e).__name__}: {e})")
    problems += check_references(objects)
    return problems


def load_objects(paths):
    objects = []
    for path in paths:
        files = [path]
        if os.path.isdir(path):
            files = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith((".yaml", ".yml")))
        for file_name in files:
            with open(file_name, encoding="utf-8") as f:
                objects += [d for d in yaml.safe_load_all(f) if d is not None]
    return objects


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--chart")
    parser.add_argument("-f", "--values", action="append", default=[])
    args = parser.parse_args(argv)
    if args.chart:
        sys.path.insert(0, HERE)
        import render  # noqa: E402
        objects = [d for _, d in render.render_documents(args.chart, args.values)]
    else:
        objects = load_objects(args.paths)
    problems = validate_objects(objects)
    for p in problems:
        print(p)
    print(f"{len(objects)} objects, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
