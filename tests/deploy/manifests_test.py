#!/usr/bin/python3
"""deploy/ without a cluster: every manifest (deploy/k8s and the chart rendered with each values file)
against the strict Kubernetes 1.36 schemas and SERVER.md's rules, deliberately broken manifests caught,
deploy/k8s equal to the chart's rendering, the renderer's subset, and the Dockerfiles' shape.
No server, no network."""

import copy
import json
import os
import unittest

import yaml

import deploy_support as ds
from deploy_support import health_check, render, validate


def rendered(values_name):
    return [d for _, d in render.render_documents(ds.CHART, ds.VALUE_FILES[values_name])]


def plain(variant):
    return validate.load_objects([os.path.join(ds.DEPLOY, "k8s", variant)])


def find(objects, kind):
    matches = [o for o in objects if o.get("kind") == kind]
    if len(matches) != 1:
        raise AssertionError(f"expected one {kind}, found {len(matches)}")
    return matches[0]


def server_container(objects):
    return find(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def env_entry(container, name):
    return next(e for e in container["env"] if e["name"] == name)


class ValidManifests(unittest.TestCase):
    def test_plain_manifests_have_no_problems(self):
        for variant in ds.PLAIN:
            with self.subTest(variant=variant):
                objects = plain(variant)
                self.assertEqual(sorted(o["kind"] for o in objects),
                                 ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"])
                self.assertEqual(validate.validate_objects(objects), [])

    def test_chart_renders_valid_objects_with_each_values_file(self):
        for name in ds.VALUE_FILES:
            with self.subTest(values=name):
                objects = rendered(name)
                self.assertEqual(len(objects), 4)
                self.assertEqual(validate.validate_objects(objects), [])

    def test_plain_manifests_are_the_chart_rendered(self):
        for variant, files in ds.PLAIN.items():
            expected = render.plain_manifest_texts(render.render_chart(ds.CHART, files),
                                                   render.plain_header(files))
            directory = os.path.join(ds.DEPLOY, "k8s", variant)
            self.assertEqual(sorted(os.listdir(directory)), sorted(expected),
                             f"deploy/k8s/{variant}: files differ from the chart's templates")
            for file_name, text in expected.items():
                with open(os.path.join(directory, file_name), encoding="utf-8") as f:
                    self.assertEqual(f.read(), text,
                                     f"deploy/k8s/{variant}/{file_name} is not the chart's rendering: run "
                                     f"deploy/validate/render.py deploy/helm/longnet -f "
                                     f"deploy/helm/longnet/values-{variant}.yaml --output-dir deploy/k8s/{variant}")

    def test_what_server_md_asks_is_there(self):
        for name in ds.VALUE_FILES:
            with self.subTest(values=name):
                objects = rendered(name)
                c = server_container(objects)
                pod = find(objects, "Deployment")["spec"]["template"]["spec"]
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    self.assertEqual(c[probe]["grpc"], {"port": 50051, "service": ""})
                self.assertEqual({p["name"]: p["containerPort"] for p in c["ports"]},
                                 {"grpc": 50051, "metrics": 9090})
                service = find(objects, "Service")
                self.assertEqual({p["name"]: p["targetPort"] for p in service["spec"]["ports"]},
                                 {"grpc": "grpc", "metrics": "metrics"})
                hpa = find(objects, "HorizontalPodAutoscaler")
                self.assertEqual(hpa["spec"]["metrics"][0]["pods"]["metric"]["name"],
                                 "longnet_queue_depth_requests")
                self.assertEqual(next(m for m in c["volumeMounts"] if m["name"] == "model")["readOnly"], True)
                self.assertIn("secret", next(v for v in pod["volumes"] if v["name"] == "api-keys"))
                self.assertGreater(pod["terminationGracePeriodSeconds"], 5 + 30)
                self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        gpu = server_container(rendered("values-gpu.yaml"))["resources"]
        self.assertEqual(gpu["requests"]["nvidia.com/gpu"], "1")
        self.assertEqual(gpu["limits"]["nvidia.com/gpu"], "1")
        self.assertNotIn("nvidia.com/gpu", server_container(rendered("values-cpu.yaml"))["resources"]["limits"])

    def test_metric_and_flag_tables_are_read_from_the_sources(self):
        self.assertIn("longnet_queue_depth_requests", validate.server_gauges())
        self.assertNotIn("longnet_requests_total", validate.server_gauges())  # a counter
        self.assertIn("drain-timeout", validate.server_flags())
        self.assertIn("api-key-file", validate.server_flags())


class BrokenManifests(unittest.TestCase):
    """Each mutation of a valid set must be reported, with a message naming what is wrong."""

    def assert_caught(self, mutate, expected, base="values-cpu.yaml"):
        objects = copy.deepcopy(rendered(base))
        mutate(objects)
        problems = validate.validate_objects(objects)
        self.assertTrue(any(expected in p for p in problems),
                        f"expected a problem containing {expected!r}, got {problems}")

    def test_unknown_field(self):
        self.assert_caught(lambda o: server_container(o).update(imagePullPolicyy="Always"),
                           "Additional properties are not allowed ('imagePullPolicyy' was unexpected)")

    def test_unknown_field_deep_in_a_probe(self):
        self.assert_caught(lambda o: server_container(o)["readinessProbe"]["grpc"].update(path="/"),
                           "readinessProbe.grpc: Additional properties are not allowed")

    def test_wrong_type(self):
        self.assert_caught(lambda o: find(o, "Deployment")["spec"]["template"]["spec"].update(
            terminationGracePeriodSeconds="60"), "terminationGracePeriodSeconds: '60' is not of type 'integer'")

    def test_missing_required_field(self):
        self.assert_caught(lambda o: server_container(o).pop("name"), "'name' is a required property")

    def test_unknown_kind(self):
        self.assert_caught(lambda o: o.append({"apiVersion": "autoscaling/v2beta2", "kind": "HorizontalPodAutoscaler",
                                               "metadata": {"name": "x"}}), "no schema for apiVersion")

    def test_probe_on_undeclared_port(self):
        self.assert_caught(lambda o: server_container(o)["livenessProbe"]["grpc"].update(port=50052),
                           "livenessProbe port 50052 is not a declared container port")

    def test_probe_that_is_not_grpc(self):
        def mutate(o):
            server_container(o)["startupProbe"] = {"tcpSocket": {"port": 50051}}
        self.assert_caught(mutate, "startupProbe is not a native gRPC probe")

    def test_probe_for_a_service_the_server_does_not_report(self):
        self.assert_caught(lambda o: server_container(o)["readinessProbe"]["grpc"].update(service="longnet"),
                           "which the server does not report")

    def test_grace_period_too_short(self):
        self.assert_caught(lambda o: find(o, "Deployment")["spec"]["template"]["spec"].update(
            terminationGracePeriodSeconds=35), "terminationGracePeriodSeconds 35 is not longer than")

    def test_drain_timeout_raised_past_the_grace_period(self):
        self.assert_caught(lambda o: env_entry(server_container(o), "LONGNET_DRAIN_TIMEOUT").update(value="120"),
                           "the drain timeout 120 s")

    def test_selector_not_matching_pod_labels(self):
        self.assert_caught(lambda o: find(o, "Deployment")["spec"]["selector"]["matchLabels"].update(
            **{"app.kubernetes.io/name": "other"}), "does not match the pod labels")

    def test_service_selecting_nothing(self):
        self.assert_caught(lambda o: find(o, "Service")["spec"]["selector"].update(app="x"),
                           "Service/longnet: selects the pods of no Deployment")

    def test_service_target_port_missing(self):
        self.assert_caught(lambda o: find(o, "Service")["spec"]["ports"][1].update(targetPort="prometheus"),
                           "targetPort 'prometheus' is not a named container port")

    def test_gpu_requests_differ_from_limits(self):
        self.assert_caught(lambda o: server_container(o)["resources"]["requests"].update(
            **{"nvidia.com/gpu": "2"}), "nvidia.com/gpu requests 2 != limits 1", base="values-gpu.yaml")

    def test_cuda_device_without_a_gpu(self):
        def mutate(o):
            r = server_container(o)["resources"]
            del r["requests"]["nvidia.com/gpu"], r["limits"]["nvidia.com/gpu"]
        self.assert_caught(mutate, "LONGNET_DEVICE=cuda but no nvidia.com/gpu", base="values-gpu.yaml")

    def test_hpa_targeting_something_else(self):
        self.assert_caught(lambda o: find(o, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"].update(name="web"),
                           "scaleTargetRef names no Deployment")

    def test_hpa_on_a_metric_the_server_does_not_export(self):
        self.assert_caught(lambda o: find(o, "HorizontalPodAutoscaler")["spec"]["metrics"][0]["pods"]["metric"].update(
            name="longnet_queue_depth"), "metric 'longnet_queue_depth' is not a gauge of longnet-server")

    def test_pdb_selecting_other_pods(self):
        self.assert_caught(lambda o: find(o, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].update(
            tier="x"), "PodDisruptionBudget/longnet: selector")

    def test_writable_model_volume(self):
        def mutate(o):
            next(m for m in server_container(o)["volumeMounts"] if m["name"] == "model")["readOnly"] = False
        self.assert_caught(mutate, "the model volume mount /models/model is not readOnly")

    def test_api_keys_not_from_a_secret(self):
        def mutate(o):
            pod = find(o, "Deployment")["spec"]["template"]["spec"]
            pod["volumes"] = [v for v in pod["volumes"] if v["name"] != "api-keys"]
            pod["volumes"].append({"name": "api-keys", "emptyDir": {}})
        self.assert_caught(mutate, "is not on a mounted Secret volume")

    def test_misspelt_server_variable(self):
        self.assert_caught(lambda o: env_entry(server_container(o), "LONGNET_DRAIN_TIMEOUT").update(
            name="LONGNET_DRAIN_TIMEOUT_SECONDS"), "LONGNET_DRAIN_TIMEOUT_SECONDS is not a flag of longnet-server")

    def test_port_variable_disagreeing_with_the_container_port(self):
        self.assert_caught(lambda o: env_entry(server_container(o), "LONGNET_PORT").update(value="8080"),
                           "LONGNET_PORT=8080 but the container port named grpc is 50051")

    def test_memory_budget_over_the_limit(self):
        self.assert_caught(lambda o: env_entry(server_container(o), "LONGNET_MEMORY_BUDGET_MB").update(
            value="20000"), "does not fit the memory limit")

    def test_broken_file_on_disk_fails_the_command_line(self):
        import tempfile
        objects = plain("cpu")
        server_container(objects)["ports"][0]["containerPortt"] = 1
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "broken.yaml")
            with open(path, "w") as f:
                yaml.safe_dump_all(objects, f)
            self.assertEqual(validate.main([path]), 1)
            self.assertEqual(validate.main([os.path.join(ds.DEPLOY, "k8s", "cpu")]), 0)


class Chart(unittest.TestCase):
    def test_values_schema_rejects_bad_values(self):
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            for bad, message in (({"server": {"device": "tpu"}}, "server.device"),
                                 ({"autoscaling": {"queueMetric": "cpu"}}, "autoscaling.queueMetric"),
                                 ({"replicas": 3}, "Additional properties")):
                path = os.path.join(tmp, "bad.yaml")
                with open(path, "w") as f:
                    yaml.safe_dump(bad, f)
                with self.assertRaises(render.TemplateError) as caught:
                    render.render_chart(ds.CHART, [path])
                self.assertIn(message, str(caught.exception))

    def test_values_merge_like_helm(self):
        merged = render.merge_values({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3]}, "d": None})
        self.assertEqual(merged, {"a": {"b": 1, "c": [3]}})

    def test_autoscaling_off_sets_replicas_and_drops_the_hpa(self):
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "noscale.yaml")
            with open(path, "w") as f:
                yaml.safe_dump({"autoscaling": {"enabled": False}, "podDisruptionBudget": {"enabled": False},
                                "apiKeys": {"secretName": ""}}, f)
            objects = [d for _, d in render.render_documents(ds.CHART, [path])]
        self.assertEqual(sorted(o["kind"] for o in objects), ["Deployment", "Service"])
        deployment = find(objects, "Deployment")
        self.assertEqual(deployment["spec"]["replicas"], 2)
        names = [e["name"] for e in server_container(objects)["env"]]
        self.assertNotIn("LONGNET_API_KEY_FILE", names)
        self.assertEqual(validate.validate_objects(objects), [])

    def test_renderer_subset(self):
        context = {"Values": {"a": {"n": 3, "s": "x", "l": [1]}, "off": False}, "Release": {"Name": "r"},
                   "Chart": {}}

        def run(text):
            return render.execute(render.parse(text, "t"), context, "t")

        self.assertEqual(run("a: {{ .Values.a.s | quote }}"), 'a: "x"')
        self.assertEqual(run("n: {{ add .Values.a.n 2 1 }}"), "n: 6")
        self.assertEqual(run("x:\n  {{- toYaml .Values.a.l | nindent 2 }}\n"), "x:\n  - 1\n")
        self.assertEqual(run("{{- if .Values.off }}on{{ else }}off{{ end }}"), "off")
        self.assertEqual(run("a {{- /* c */}} b"), "a b")
        self.assertEqual(run("{{ if not .Values.missing }}none{{ end }}"), "none")
        for unsupported in ("{{ range .Values.a.l }}x{{ end }}", '{{ include "x" . }}', "{{ .Capabilities }}",
                            "{{ if .Values.off }}x", "{{ .Values.a | upper }}"):
            with self.assertRaises(render.TemplateError, msg=unsupported):
                run(unsupported)


class Schemas(unittest.TestCase):
    def test_vendored_schemas_are_recorded(self):
        directory = os.path.join(ds.DEPLOY, "validate", "schemas")
        with open(os.path.join(directory, "SOURCE.md"), encoding="utf-8") as f:
            source = f.read()
        self.assertIn("@kubernetes/client-node", source)
        self.assertIn("2.0.1", source)
        self.assertIn("Apache-2.0", source)
        with open(os.path.join(directory, "kubernetes-1.36", "LICENSE"), encoding="utf-8") as f:
            self.assertIn("Apache License", f.read())
        for file_name in validate.SCHEMAS.values():
            with open(os.path.join(directory, "kubernetes-1.36", file_name), encoding="utf-8") as f:
                schema = json.load(f)
            self.assertIs(schema["additionalProperties"], False)
            self.assertIn("release-1.36", schema["description"])
            self.assertTrue(all(d.get("additionalProperties") is False for d in schema["definitions"].values()
                                if "properties" in d))


class Dockerfiles(unittest.TestCase):
    def test_both_images_have_the_same_runtime_shape(self):
        for name in ("Dockerfile.cpu", "Dockerfile.cuda"):
            with self.subTest(dockerfile=name):
                path = os.path.join(ds.DEPLOY, "docker", name)
                instructions = ds.dockerfile_instructions(path)
                stages = [rest for _, word, rest in instructions if word == "FROM"]
                self.assertEqual(len(stages), 2, "a build stage and a runtime stage")
                build_runs = " ".join(rest for stage, word, rest in instructions if stage == "build" and word == "RUN")
                self.assertIn("tools/install-deps.sh", build_runs)
                self.assertIn("cmake --install /build --prefix /opt/longnet", build_runs)
                stage = ds.runtime_stage(path)
                self.assertTrue(stage["from"].startswith("debian:bookworm-slim"))
                self.assertEqual(stage["user"], "10001:10001")
                self.assertEqual(stage["entrypoint"], ["/opt/longnet/bin/longnet-server"])
                self.assertEqual(stage["healthcheck"]["cmd"],
                                 ["/usr/bin/python3", "/opt/longnet/bin/longnet-health-check"])
                self.assertIn("python3-grpcio", stage["packages"])
                self.assertEqual(stage["env"]["LONGNET_PORT"], "50051")
                self.assertTrue(all(src == "build" or src is None for src, _, _ in stage["copies"]))
        cuda = ds.runtime_stage(os.path.join(ds.DEPLOY, "docker", "Dockerfile.cuda"))
        packages = [ds.expand_args(p, cuda["args"]) for p in cuda["packages"]]
        self.assertIn("cuda-cudart-13-0", packages)
        self.assertIn("libcublas-13-0", packages)
        self.assertEqual(cuda["env"]["LONGNET_DEVICE"], "cuda")
        cpu = ds.runtime_stage(os.path.join(ds.DEPLOY, "docker", "Dockerfile.cpu"))
        self.assertEqual(cpu["copies"], cuda["copies"])
        self.assertEqual(sorted(set(cpu["packages"])), sorted(set(p for p in packages if not p.startswith(
            ("cuda-", "libcublas", "ca-certificates", "curl")))))


class HealthCheckEncoding(unittest.TestCase):
    def test_request_and_response_encoding(self):
        self.assertEqual(health_check.encode_request(""), b"")
        self.assertEqual(health_check.encode_request("longnet.v1.InfoService"), b"\x0a\x16longnet.v1.InfoService")
        self.assertEqual(health_check.decode_status(b""), 0)
        self.assertEqual(health_check.decode_status(b"\x08\x01"), 1)
        self.assertEqual(health_check.decode_status(b"\x08\x02"), 2)
        self.assertEqual(health_check.decode_status(b"\x12\x01x\x08\x01"), 1)  # an unknown field skipped

    def test_nothing_listening_is_unhealthy(self):
        code, message = health_check.check(f"127.0.0.1:{ds.free_port()}", timeout=2)
        self.assertEqual(code, 1)
        self.assertIn("UNAVAILABLE", message)


if __name__ == "__main__":
    unittest.main()
