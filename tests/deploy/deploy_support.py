"""Support for the deploy tests: the repository's deploy/ modules, a Dockerfile reader, and longnet-server
as a child process started from a container's or a pod's description."""

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(REPO, "deploy")
CHART = os.path.join(DEPLOY, "helm", "longnet")
VALUE_FILES = {  # name -> the -f files of `helm install` (values.yaml is always the base)
    "values.yaml": [],
    "values-cpu.yaml": [os.path.join(CHART, "values-cpu.yaml")],
    "values-gpu.yaml": [os.path.join(CHART, "values-gpu.yaml")],
}
PLAIN = {  # deploy/k8s/<variant> -> the values files it is rendered from
    "cpu": [os.path.join(CHART, "values-cpu.yaml")],
    "gpu": [os.path.join(CHART, "values-gpu.yaml")],
}

for _p in (os.path.join(DEPLOY, "validate"), os.path.join(DEPLOY, "docker"),
           os.path.join(REPO, "tests", "server", "integration")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import harness as H  # noqa: E402  free ports and children that die with this process, as the server tests
from harness import free_port, free_ports  # noqa: E402,F401  (the tests call ds.free_port(s))

import health_check  # noqa: E402  deploy/docker/health_check.py
import render  # noqa: E402  deploy/validate/render.py
import validate  # noqa: E402  deploy/validate/validate.py


# ---------------------------------------------------------------- Dockerfiles
def dockerfile_instructions(path):
    """[(stage name, INSTRUCTION, argument text)] with continuation lines joined and comments dropped."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out, stage, pending = [], None, ""
    for line in lines:
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = (pending + stripped).strip()
        pending = ""
        word, _, rest = text.partition(" ")
        word = word.upper()
        if word == "FROM":
            parts = rest.split()
            stage = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else parts[0]
        out.append((stage, word, rest.strip()))
    return out


def exec_form(text):
    """A JSON array (exec form) of a RUN/CMD/ENTRYPOINT/HEALTHCHECK CMD; shell form is refused."""
    text = text.strip()
    if not text.startswith("["):
        raise AssertionError(f"not in exec form (JSON array): {text}")
    return json.loads(text)


def parse_env(text):
    """ENV a=b c=d (the key=value form)."""
    env = {}
    for item in shlex.split(text):
        key, eq, value = item.partition("=")
        if not eq:
            raise AssertionError(f"ENV without '=': {text}")
        env[key] = value
    return env


def runtime_stage(path):
    """What the last stage of a Dockerfile makes: copies, env, user, entrypoint, healthcheck, apt packages."""
    instructions = dockerfile_instructions(path)
    last = instructions[-1][0]
    stage = {"copies": [], "env": {}, "user": None, "entrypoint": None, "cmd": [], "healthcheck": None,
             "packages": [], "from": None, "args": {}}
    for name, word, rest in instructions:
        if word == "ARG" and name is None:
            key, _, value = rest.partition("=")
            stage["args"][key] = value
        if name != last:
            continue
        if word == "FROM":
            stage["from"] = rest.split()[0]
        elif word == "ARG":
            key, _, value = rest.partition("=")
            if value:
                stage["args"][key] = value
        elif word == "COPY":
            parts = rest.split()
            source_stage = None
            if parts[0].startswith("--from="):
                source_stage = parts[0][len("--from="):]
                parts = parts[1:]
            if any(p.startswith("--") for p in parts):
                raise AssertionError(f"unsupported COPY option in {rest}")
            for src in parts[:-1]:
                stage["copies"].append((source_stage, src, parts[-1]))
        elif word == "ENV":
            stage["env"].update(parse_env(rest))
        elif word == "USER":
            stage["user"] = rest
        elif word == "ENTRYPOINT":
            stage["entrypoint"] = exec_form(rest)
        elif word == "CMD":
            stage["cmd"] = exec_form(rest)
        elif word == "HEALTHCHECK":
            options, _, command = rest.partition("CMD ")
            stage["healthcheck"] = {"options": options.split(), "cmd": exec_form(command)}
        elif word == "RUN" and "apt-get install" in rest:
            # the words after `apt-get install` up to the next shell operator, less the options
            for segment in rest.split("&&"):
                if "apt-get install" in segment:
                    words = segment.split("apt-get install", 1)[1].split()
                    stage["packages"] += [w for w in words if not w.startswith("-")]
    return stage


def expand_args(text, args):
    for key, value in args.items():
        text = text.replace("${" + key + "}", value)
    return text


# ---------------------------------------------------------------- processes
class Process:
    """A longnet-server (or any command) with its stderr in a file; killed if the test dies."""

    def __init__(self, argv, env, uid_gid=None):
        self.argv, self.env, self.uid_gid = argv, env, uid_gid
        self.tmp = tempfile.TemporaryDirectory(prefix="longnet-deploy-")
        self.log_path = os.path.join(self.tmp.name, "stderr")
        self.proc = None

    def start(self):
        # As another user, if asked, with no supplementary groups (done by Popen itself, no preexec_fn).
        as_user = {}
        if self.uid_gid:
            as_user = {"user": self.uid_gid[0], "group": self.uid_gid[1], "extra_groups": []}
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(H.die_with_parent(self.argv), env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log, **as_user)
        return self

    def log_tail(self, lines=40):
        with open(self.log_path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait_until(self, predicate, what, timeout=120):
        """Polls predicate() until it is true; fails if the process exits or `timeout` s pass (a bound on
        start-up, not a measurement)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.argv[0]} exited with {self.proc.returncode} before {what}\n"
                                     f"{self.log_tail()}")
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"not {what} after {timeout} s\n{self.log_tail()}")

    def stop(self):
        """SIGTERM and the exit code (the server drains and exits 0)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.tmp.cleanup()


def base_env():
    """The test's environment without any LONGNET_* setting of the caller's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LONGNET_") or k == "LONGNET_CPU_ISA"}


def grpc_status_of_call(address, method, metadata=()):
    """The gRPC status code name of an empty-request unary call (b"" is a valid empty message)."""
    import grpc
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            call(b"", timeout=30, metadata=list(metadata))
            return "OK"
        except grpc.RpcError as e:
            return e.code().name
