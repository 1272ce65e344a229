#!/usr/bin/python3
"""The real longnet-server started as the deploy files start it, without Docker or a cluster.

ContainerRuntimeStage: `cmake --install` into a temporary prefix stands in for the build stage's
/opt/longnet; every COPY of the Dockerfile's runtime stage is carried out into a temporary root (a source
missing after the install fails); the runtime stage's apt packages must provide every shared library the
installed server needs; then the ENTRYPOINT runs from that root with the stage's ENV, as its USER when the
test runs as root, and the HEALTHCHECK command (the stage's own checker) must report it healthy — and
unhealthy once it is gone.

PodFromManifests: the container of the Deployment in deploy/k8s/cpu and in the chart rendered with
values.yaml and values-cpu.yaml, started with exactly its environment (resourceFieldRef resolved from its
limits), the image's entrypoint, the model volume's mountPath mapped to models/demo and the API key
Secret's mount to a test key file; then the same grpc.health.v1 checks its startup, readiness and
liveness probes make, a longnet.v1 call refused without the key and answered with it, and a drain on
SIGTERM that exits 0.

Two deliberate differences from a container, both forced by sharing a machine: the gRPC and metrics
ports are replaced by free ones (everywhere they appear: ENV, probes, the checker's address), and the
paths above are mapped into temporary directories.

  server_test.py --build-dir BUILD [--cmake CMAKE] [unittest args]
"""

import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import deploy_support as ds
from deploy_support import health_check, render, validate

BUILD_DIR = None
CMAKE = "cmake"
STARTUP_BOUND = 180
# A sanitizer build's runtimes, and libatomic, which only the sanitizer build links (ASan's runtime needs
# it): neither is in a release image.
SANITIZER_RUNTIMES = ("libasan.", "libubsan.", "libtsan.", "liblsan.", "libatomic.")
# Linked when the build tree has the CUDA backend (nvcc found): the CUDA image installs them from NVIDIA's
# repository (Dockerfile.cuda), the CPU image is configured with LONGNET_WITH_CUDA=OFF and has none.
CUDA_RUNTIMES = ("libcudart.", "libcublas.", "libcublasLt.")  # seconds a start may take before the test gives up (not a measurement)


def install_prefix(tmp):
    prefix = os.path.join(tmp, "install")
    p = subprocess.run([CMAKE, "--install", BUILD_DIR, "--prefix", prefix], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"cmake --install failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return prefix


def dpkg_owner(path):
    """The Debian package that installed a file, trying the merged-/usr spellings of its path."""
    real = os.path.realpath(path)
    candidates = [path, real]
    for c in list(candidates):
        if c.startswith("/usr/lib/"):
            candidates.append(c[len("/usr"):])
        elif c.startswith("/lib/"):
            candidates.append("/usr" + c)
    for c in candidates:
        p = subprocess.run(["dpkg-query", "-S", c], capture_output=True, text=True)
        if p.returncode == 0:
            return p.stdout.split(":", 1)[0].strip()
    return None


def installed_depends(package):
    p = subprocess.run(["dpkg-query", "-W", "-f", "${Depends}, ${Pre-Depends}", package],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return None
    names = set()
    for clause in p.stdout.split(","):
        for alternative in clause.split("|"):
            name = alternative.strip().split(" ")[0].split(":")[0]
            if name:
                names.add(name)
    return names


def essential_packages():
    p = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Essential}\n"], capture_output=True, text=True)
    return {line.split()[0] for line in p.stdout.splitlines() if line.endswith(" yes")}


def package_closure(roots):
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += sorted(installed_depends(name) or ())
    return seen


def shared_libraries(binary):
    p = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"ldd {binary}: {p.stderr}")
    libs = []
    for line in p.stdout.splitlines():
        if "=>" in line:
            target = line.split("=>", 1)[1].split("(")[0].strip()
            if target == "not found":
                raise AssertionError(f"{binary}: {line.strip()}")
            libs.append(target)
    return libs


class ContainerRuntimeStage(unittest.TestCase):
    DOCKERFILE = os.path.join(ds.DEPLOY, "docker", "Dockerfile.cpu")

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="longnet-image-")
        cls.prefix = install_prefix(cls.tmp.name)
        cls.stage = ds.runtime_stage(cls.DOCKERFILE)
        cls.root = os.path.join(cls.tmp.name, "root")
        os.makedirs(cls.root)
        # The build stage installs with --prefix /opt/longnet: that path is our temporary prefix.
        for source_stage, src, dst in cls.stage["copies"]:
            if source_stage == "build":
                if not src.startswith("/opt/longnet/"):
                    raise AssertionError(f"COPY --from=build {src}: not under the install prefix /opt/longnet")
                source = os.path.join(cls.prefix, src[len("/opt/longnet/"):])
            else:
                source = os.path.join(ds.REPO, src)
            if not os.path.exists(source):
                raise AssertionError(f"COPY {src} {dst}: {source} does not exist after the install")
            target = os.path.join(cls.root, dst.lstrip("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.isdir(source):
                shutil.copytree(source, target)
            else:
                shutil.copy2(source, target)
        for directory, _, _ in os.walk(cls.tmp.name):  # a non-root USER must reach the files
            os.chmod(directory, 0o755)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def in_root(self, path):
        return os.path.join(self.root, path.lstrip("/")) if path.startswith("/opt/longnet/") else path

    def test_every_copy_source_exists_after_the_install(self):
        self.assertTrue(self.stage["copies"])
        for _, _, dst in self.stage["copies"]:
            self.assertTrue(os.path.exists(os.path.join(self.root, dst.lstrip("/"))), dst)
        self.assertTrue(os.path.exists(self.in_root("/opt/longnet/share/longnet/models/demo/config.json")))

    def test_runtime_packages_provide_every_shared_library(self):
        server = self.in_root(self.stage["entrypoint"][0])
        packages = set(self.stage["packages"])
        not_installed = [p for p in packages if installed_depends(p) is None]
        self.assertEqual(not_installed, [], "runtime packages not installed here, so not what the build links")
        # debian:bookworm-slim has the Essential packages and apt (with its libraries).
        closure = package_closure(packages | essential_packages() | {"apt"})
        missing, cuda_libs = {}, []
        for lib in shared_libraries(server):
            base = os.path.basename(lib)
            if base.startswith(SANITIZER_RUNTIMES):
                continue  # a sanitizer build's runtime, not in a release image
            if base.startswith(CUDA_RUNTIMES):
                cuda_libs.append(base)  # this build has the CUDA backend; the CPU image is built without it
                continue
            owner = dpkg_owner(lib)
            if owner is None or owner not in closure:
                missing[lib] = owner
        self.assertEqual(missing, {}, "libraries of longnet-server that the runtime stage's packages "
                                      "(and their dependencies) do not install: add their packages")
        if cuda_libs:
            cuda = ds.runtime_stage(os.path.join(ds.DEPLOY, "docker", "Dockerfile.cuda"))
            cuda_packages = [ds.expand_args(p, cuda["args"]) for p in cuda["packages"]]
            for prefix, package in (("libcudart.", "cuda-cudart-"), ("libcublas", "libcublas-")):
                if any(lib.startswith(prefix) for lib in cuda_libs):
                    self.assertTrue(any(p.startswith(package) for p in cuda_packages),
                                    f"the server links {prefix}*: Dockerfile.cuda's runtime stage needs {package}*")

    def test_entrypoint_serves_and_healthcheck_reports_it(self):
        env = ds.base_env()
        env.update(self.stage["env"])
        port, metrics_port = ds.free_ports(2)
        env["LONGNET_PORT"] = str(port)
        env["LONGNET_METRICS_PORT"] = str(metrics_port)
        argv = [self.in_root(a) for a in self.stage["entrypoint"] + self.stage["cmd"]]
        user = None
        if os.geteuid() == 0:
            uid, _, gid = self.stage["user"].partition(":")
            user = (int(uid), int(gid or uid))
        healthcheck = [self.in_root(a) for a in self.stage["healthcheck"]["cmd"]]

        def healthy():
            return subprocess.run(healthcheck, env=env, capture_output=True).returncode == 0

        server = ds.Process(argv, env, user).start()
        try:
            server.wait_until(healthy, "healthy by the image's HEALTHCHECK command", STARTUP_BOUND)
            self.assertIn("demo", server.log_tail(200))  # the demo model, found from the binary's location
            if user:
                self.assertEqual(os.stat(f"/proc/{server.proc.pid}").st_uid, user[0], "runs as the USER")
            self.assertEqual(server.stop(), 0, server.log_tail())
            result = subprocess.run(healthcheck, env=env, capture_output=True, text=True)
            self.assertEqual(result.returncode, 1, result.stdout)
        finally:
            server.cleanup()


def resolve_env(container, entry):
    """An env entry's value: `value`, or a resourceFieldRef to the container's limits (cores rounded up)."""
    if "value" in entry:
        return str(entry["value"])
    ref = (entry.get("valueFrom") or {}).get("resourceFieldRef")
    if ref and ref.get("resource") == "limits.cpu":
        cores = validate.quantity(container["resources"]["limits"]["cpu"])
        return str(math.ceil(cores))
    raise AssertionError(f"cannot resolve {entry} without a cluster")


class PodFromManifests(unittest.TestCase):
    def run_pod(self, objects, label):
        deployment = next(o for o in objects if o["kind"] == "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        stage = ds.runtime_stage(os.path.join(ds.DEPLOY, "docker", "Dockerfile.cpu"))
        self.assertNotIn("command", container, "the image's ENTRYPOINT starts the server")
        self.assertNotIn("args", container)
        tmp = tempfile.TemporaryDirectory(prefix="longnet-pod-")
        try:
            prefix = install_prefix(tmp.name)
            env = ds.base_env()
            env.update(stage["env"])  # the image's ENV, which the pod's env overrides
            for entry in container.get("env", []):
                env[entry["name"]] = resolve_env(container, entry)
            # Paths: the model volume is models/demo; the API key Secret's mount is a directory with a key.
            volumes = {v["name"]: v for v in pod["volumes"]}
            mapped = {}
            key = "deploy-test-key-1"
            for mount in container["volumeMounts"]:
                volume = volumes[mount["name"]]
                if "secret" in volume:
                    directory = os.path.join(tmp.name, "secret-" + mount["name"])
                    os.makedirs(directory)
                    with open(os.path.join(directory, os.path.basename(env["LONGNET_API_KEY_FILE"])), "w") as f:
                        f.write(f"# test key\n{key}\n")
                    mapped[mount["mountPath"]] = directory
                elif mount["name"] == "model":
                    mapped[mount["mountPath"]] = os.path.join(ds.REPO, "models", "demo")
            for name, value in list(env.items()):
                for path, local in mapped.items():
                    if value == path or value.startswith(path.rstrip("/") + "/"):
                        env[name] = local + value[len(path.rstrip("/")):]
            self.assertEqual(env["LONGNET_MODEL"], os.path.join(ds.REPO, "models", "demo"))
            # Ports: free ones instead of the manifest's (shared machine), carried into the probes.
            port, metrics_port = ds.free_ports(2)
            port_map = {int(env["LONGNET_PORT"]): port, int(env["LONGNET_METRICS_PORT"]): metrics_port}
            env["LONGNET_PORT"], env["LONGNET_METRICS_PORT"] = str(port), str(metrics_port)
            argv = [os.path.join(prefix, a[len("/opt/longnet/"):]) for a in stage["entrypoint"]]
            server = ds.Process(argv, env).start()
            try:
                def probe_ok(name):
                    grpc_probe = container[name]["grpc"]
                    address = f"127.0.0.1:{port_map[grpc_probe['port']]}"
                    return health_check.check(address, grpc_probe.get("service", ""),
                                              timeout=container[name].get("timeoutSeconds", 1) + 1)[0] == 0

                server.wait_until(lambda: probe_ok("startupProbe"), f"{label}: startupProbe passing", STARTUP_BOUND)
                self.assertTrue(probe_ok("readinessProbe"), f"{label}: readinessProbe")
                self.assertTrue(probe_ok("livenessProbe"), f"{label}: livenessProbe")
                address = f"127.0.0.1:{env['LONGNET_PORT']}"
                info = "/longnet.v1.InfoService/GetInfo"
                if "LONGNET_API_KEY_FILE" in env:
                    self.assertEqual(ds.grpc_status_of_call(address, info), "UNAUTHENTICATED")
                    self.assertEqual(ds.grpc_status_of_call(address, info, [("authorization", f"Bearer {key}")]),
                                     "OK")
                else:
                    self.assertEqual(ds.grpc_status_of_call(address, info), "OK")
                log = server.log_tail(400)
                self.assertIn('"level"', log, "LONGNET_LOG_FORMAT=json reached the server")
                self.assertEqual(server.stop(), 0, server.log_tail())
                self.assertFalse(probe_ok("livenessProbe"))
            finally:
                server.cleanup()
        finally:
            tmp.cleanup()

    def test_plain_cpu_manifests(self):
        self.run_pod(validate.load_objects([os.path.join(ds.DEPLOY, "k8s", "cpu")]), "deploy/k8s/cpu")

    def test_chart_rendered_with_cpu_values(self):
        for name in ("values.yaml", "values-cpu.yaml"):
            with self.subTest(values=name):
                self.run_pod([d for _, d in render.render_documents(ds.CHART, ds.VALUE_FILES[name])],
                             f"chart with {name}")

    def test_gpu_values_are_not_started_here(self):
        objects = [d for _, d in render.render_documents(ds.CHART, ds.VALUE_FILES["values-gpu.yaml"])]
        container = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
        device = next(e["value"] for e in container["env"] if e["name"] == "LONGNET_DEVICE")
        self.assertEqual(device, "cuda")
        self.skipTest("values-gpu.yaml asks for LONGNET_DEVICE=cuda: there is no GPU on this machine "
                      "(its manifests are validated by manifests_test.py)")


def main():
    global BUILD_DIR, CMAKE
    argv = list(sys.argv)
    rest = [argv[0]]
    i = 1
    while i < len(argv):
        if argv[i] == "--build-dir":
            BUILD_DIR = argv[i + 1]
            i += 2
        elif argv[i] == "--cmake":
            CMAKE = argv[i + 1]
            i += 2
        else:
            rest.append(argv[i])
            i += 1
    if not BUILD_DIR:
        sys.exit("server_test.py: --build-dir is required")
    unittest.main(argv=rest)


if __name__ == "__main__":
    main()
