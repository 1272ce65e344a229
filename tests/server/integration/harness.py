"""Support for the longnet-server integration tests: the server as a child process, the generated Python
stubs, a Prometheus scraper, a reflection client and test certificates.

Every server is started on a port picked here (free at the time), with its stderr in a file; the process
is killed by `stop()`, by an atexit hook, and by the kernel if this Python process dies first
(PR_SET_PDEATHSIG), so no test leaves a server behind.
"""

import atexit
import faulthandler
import importlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import grpc

# Set by configure() from the command line.
SERVER = None        # path of longnet-server
LONGNET_RUN = None   # path of longnet-run
PYTHON = "/usr/bin/python3"
STUB_DIR = None
TIME_SCALE = 1.0     # > 1 under sanitizers: every timeout is multiplied by it
THREADS = 2

# The generated modules, filled in by load_stubs().
pb = {}

_live = []
_live_lock = threading.Lock()


def scaled(seconds):
    return seconds * TIME_SCALE


def load_stubs(stub_dir):
    """Imports the protoc-generated modules from `stub_dir` (longnet/v1/*, grpc/health/v1, grpc/reflection).

    The generated grpc/health and grpc/reflection packages live in a directory named `grpc`, which must not
    shadow the grpcio package itself: their directory is added to grpc's package path instead."""
    global STUB_DIR
    STUB_DIR = stub_dir
    if stub_dir not in sys.path:
        sys.path.append(stub_dir)
    extra = os.path.join(stub_dir, "grpc")
    if extra not in grpc.__path__:
        grpc.__path__.append(extra)
    names = {
        "common": "longnet.v1.common_pb2",
        "generate": "longnet.v1.generate_pb2",
        "generate_grpc": "longnet.v1.generate_pb2_grpc",
        "encode": "longnet.v1.encode_pb2",
        "encode_grpc": "longnet.v1.encode_pb2_grpc",
        "tokenize": "longnet.v1.tokenize_pb2",
        "tokenize_grpc": "longnet.v1.tokenize_pb2_grpc",
        "info": "longnet.v1.info_pb2",
        "info_grpc": "longnet.v1.info_pb2_grpc",
        "health": "grpc.health.v1.health_pb2",
        "health_grpc": "grpc.health.v1.health_pb2_grpc",
        "reflection": "grpc.reflection.v1alpha.reflection_pb2",
        "reflection_grpc": "grpc.reflection.v1alpha.reflection_pb2_grpc",
    }
    for key, module in names.items():
        pb[key] = importlib.import_module(module)


def take_options(argv, names, required=()):
    """Splits argv into this program's options (`--name value` for each of `names`; a dict, None when
    absent) and the rest, which goes to unittest. Exits naming a `required` option that is missing."""
    opts = {name: None for name in names}
    rest = [argv[0]]
    i = 1
    while i < len(argv):
        if argv[i] in opts and i + 1 < len(argv):
            opts[argv[i]] = argv[i + 1]
            i += 2
        else:
            rest.append(argv[i])
            i += 1
    for name in required:
        if not opts[name]:
            sys.exit(f"{argv[0]}: {name} is required")
    return opts, rest


def run_tests(namespace, bases, configure_argv):
    """The main of a script of server tests. `--list` prints its test classes, one per line, for CTest to
    register one entry each: the TestCases of `namespace` (the script's globals()) that define tests, but
    the shared `bases`. Otherwise runs unittest on the arguments `configure_argv(argv)` leaves."""
    if "--list" in sys.argv:
        names = [name for name, obj in sorted(namespace.items())
                 if isinstance(obj, type) and issubclass(obj, unittest.TestCase)
                 and obj.__module__ == namespace["__name__"] and any(n.startswith("test_") for n in dir(obj))
                 and name not in bases]
        print("\n".join(names))
        sys.exit(0)
    unittest.main(argv=configure_argv(sys.argv), verbosity=2)


def configure(argv, extra=(), load=True):
    """Takes the options every server test script has -- --server, --longnet-run, --stubs (required),
    --python, --time-scale, --watchdog -- and the script's `extra` ones out of argv. Sets the harness's
    paths and time scale, arms the watchdog (a hang fails clearly: every thread's stack, then exit; the
    servers die with us through setpriv --pdeathsig) and, with `load`, imports the stubs. Returns the options
    (a dict) and the rest of argv, which goes to unittest."""
    global SERVER, LONGNET_RUN, PYTHON, TIME_SCALE
    opts, rest = take_options(argv, ("--server", "--longnet-run", "--stubs", "--python", "--time-scale",
                                     "--watchdog", *extra),
                              required=("--server", "--longnet-run", "--stubs", *extra))
    SERVER = opts["--server"]
    LONGNET_RUN = opts["--longnet-run"]
    if opts["--python"]:
        PYTHON = opts["--python"]
    if opts["--time-scale"]:
        TIME_SCALE = float(opts["--time-scale"])
    if opts["--watchdog"]:
        faulthandler.dump_traceback_later(float(opts["--watchdog"]), exit=True)
    if load:
        load_stubs(opts["--stubs"])
    return opts, rest


def free_ports(count):
    """`count` distinct ports of 127.0.0.1, free at the time: every socket is held until all are bound, so the
    kernel cannot hand the same port out twice (one at a time, a server once got --port == --metrics-port)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port():
    return free_ports(1)[0]


def die_with_parent(command):
    """`command` (a list) run so that the kernel kills it (SIGKILL) if this process dies first (a CTest
    timeout, a crash): through util-linux's `setpriv --pdeathsig`, which execs it, so the child's pid and
    signals are the command's own. Not a preexec_fn: Python code between fork and exec can deadlock in a
    process that has other threads (grpcio's)."""
    return ["setpriv", "--pdeathsig", "KILL", "--", *command]


@atexit.register
def _kill_leftovers():
    with _live_lock:
        procs = list(_live)
    for p in procs:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    # Retry the connection often while the server starts (not with minutes of exponential backoff). Not
    # grpc.min_reconnect_backoff_ms: it is also the connect timeout, which a TLS handshake can exceed.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class ServerError(AssertionError):
    pass


class Server:
    """One longnet-server process on 127.0.0.1:<free port>.

    args: extra flags. metrics: give it a metrics port (else --metrics-port 0). tls: (cert, key[, client_ca])
    files. The --host, --port, --metrics-port and --threads flags are set here unless args has them."""

    def __init__(self, args=(), metrics=False, env=None, tls=None, name="server"):
        self.args = list(args)
        self.metrics = metrics
        self.env = env
        self.tls = tls
        self.name = name
        self.proc = None
        self.port = None
        self.metrics_port = None
        self.tmp = tempfile.TemporaryDirectory(prefix="longnet-it-")
        self.log_path = os.path.join(self.tmp.name, f"{name}.stderr")
        self.out_path = os.path.join(self.tmp.name, f"{name}.stdout")
        self._channels = []
        self.returncode = None
        self._signalled = False
        self._stopped = False

    # --- process ---
    def command(self):
        cmd = [SERVER, "--host", "127.0.0.1", "--port", str(self.port),
               "--metrics-port", str(self.metrics_port or 0)]
        if self.metrics:
            cmd += ["--metrics-host", "127.0.0.1"]
        if "--threads" not in self.args:
            cmd += ["--threads", str(THREADS)]
        if self.tls:
            cmd += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
            if len(self.tls) > 2 and self.tls[2]:
                cmd += ["--tls-client-ca", self.tls[2]]
        return cmd + self.args

    def start(self, wait=True, timeout=60):
        ports = free_ports(2)
        self.port = ports[0]
        self.metrics_port = ports[1] if self.metrics else None
        env = dict(os.environ)
        # The test's own settings only: no LONGNET_* variable of the caller's environment leaks in.
        for k in list(env):
            if k.startswith("LONGNET_") and k not in ("LONGNET_CPU_ISA",):
                del env[k]
        if self.env:
            env.update(self.env)
        self._log = open(self.log_path, "wb")
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(die_with_parent(self.command()), stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._log, env=env)
        with _live_lock:
            _live.append(self.proc)
        if wait:
            self.wait_serving(timeout)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.running():
            self._signalled = True
            self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """The exit code, or an AssertionError (with the log) when the process is still running."""
        try:
            self.returncode = self.proc.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            raise ServerError(f"{self.name} did not exit within {scaled(timeout):.0f} s\n{self.log_tail()}")
        return self.returncode

    def stop(self):
        """SIGTERM, then SIGKILL after a grace period; closes channels. Never raises: returns what went
        wrong (the server died by itself, did not exit 0 on SIGTERM, or had to be killed), else None."""
        for ch in self._channels:
            try:
                ch.close()
            except Exception:  # noqa: BLE001
                pass
        self._channels = []
        problem = None
        if self.proc is None or self._stopped:
            return None
        if self.proc.poll() is not None and not self._signalled:
            problem = f"{self.name} exited by itself with {self.proc.returncode}"
        elif self.proc.poll() is None:
            self._signalled = True
            self.proc.terminate()
            try:
                self.proc.wait(timeout=scaled(15))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
                problem = f"{self.name} did not exit within {scaled(15):.0f} s of SIGTERM (killed)"
        self.returncode = self.proc.returncode
        if problem is None and self.returncode != 0:
            problem = f"{self.name} exited with {self.returncode} after SIGTERM (expected 0)"
        self._stopped = True
        with _live_lock:
            if self.proc in _live:
                _live.remove(self.proc)
        for f in (getattr(self, "_log", None), getattr(self, "_out", None)):
            if f:
                f.close()
        if problem:
            problem += "\n" + self.log_tail(60)
            sys.stderr.write(f"\n*** {problem}\n")  # CTest shows it with the failure
        return problem

    def cleanup(self):
        """stop(), then an AssertionError (which fails the test or class) if the server misbehaved."""
        try:
            problem = self.stop()
        finally:
            self.tmp.cleanup()
        if problem:
            raise ServerError(problem)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=40):
        text = self.log().splitlines()
        return f"--- last {min(lines, len(text))} lines of {self.name}'s stderr ---\n" + "\n".join(text[-lines:])

    # --- gRPC ---
    def address(self):
        return f"127.0.0.1:{self.port}"

    def channel(self, credentials=None, options=()):
        opts = CHANNEL_OPTIONS + list(options)
        if credentials is None:
            ch = grpc.insecure_channel(self.address(), options=opts)
        else:
            ch = grpc.secure_channel(self.address(), credentials, options=opts)
        self._channels.append(ch)
        return ch

    def health_status(self, service="", channel=None, timeout=2):
        """The health status name (SERVING, NOT_SERVING, ...), or the gRPC error code name."""
        ch = channel or self._default_channel()
        stub = pb["health_grpc"].HealthStub(ch)
        try:
            r = stub.Check(pb["health"].HealthCheckRequest(service=service), timeout=scaled(timeout))
            return pb["health"].HealthCheckResponse.ServingStatus.Name(r.status)
        except grpc.RpcError as e:
            return e.code().name

    def _default_channel(self):
        if not hasattr(self, "_default") or self._default not in self._channels:
            self._default = self.channel(self._credentials_for_probe())
        return self._default

    def _credentials_for_probe(self):
        return getattr(self, "probe_credentials", None)

    def wait_serving(self, timeout=60):
        deadline = time.monotonic() + scaled(timeout)
        last = None
        while time.monotonic() < deadline:
            if not self.running():
                raise ServerError(f"{self.name} exited with {self.proc.returncode} before serving "
                                  f"(command: {' '.join(self.command())})\n{self.log_tail()}")
            last = self.health_status("", timeout=1)
            if last == "SERVING":
                return
            if last == "UNAVAILABLE":  # not listening yet: a new channel, not one in reconnect backoff
                self._default.close()
                self._channels.remove(self._default)
            time.sleep(0.05)
        raise ServerError(f"{self.name} not SERVING after {scaled(timeout):.0f} s (last health: {last})\n"
                          f"{self.log_tail()}")

    # --- metrics ---
    def scrape(self, timeout=5):
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=scaled(timeout)) as r:
            return r.read().decode("utf-8")


def parse_metrics(text):
    """Prometheus text -> list of (name, {label: value}, float)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        labels = {}
        name = head
        if "{" in head:
            name, _, rest = head.partition("{")
            rest = rest.rstrip("}")
            for part in _split_labels(rest):
                k, _, v = part.partition("=")
                labels[k.strip()] = v.strip().strip('"')
        try:
            out.append((name.strip(), labels, float(value)))
        except ValueError:
            continue
    return out


def _split_labels(s):
    parts, cur, quoted = [], "", False
    for c in s:
        if c == '"':
            quoted = not quoted
        if c == "," and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    if cur:
        parts.append(cur)
    return parts


def metric_sum(text, name, **labels):
    """Sum of every series of `name` whose labels include `labels`; None when there is none."""
    total, found = 0.0, False
    for n, ls, v in parse_metrics(text):
        if n == name and all(ls.get(k) == v2 for k, v2 in labels.items()):
            total += v
            found = True
    return total if found else None


# --- longnet-run, the offline reference ---
def longnet_run(*args, timeout=300):
    p = subprocess.run(die_with_parent([LONGNET_RUN, *args, "--threads", str(THREADS)]), capture_output=True,
                       timeout=scaled(timeout))
    if p.returncode != 0:
        raise AssertionError(f"longnet-run {' '.join(args)} failed ({p.returncode}): "
                             f"{p.stderr.decode(errors='replace')}")
    return p.stdout.decode("utf-8")


# --- certificates ---
def make_certificates(directory):
    """A CA, a server certificate for localhost / 127.0.0.1, a client certificate, and a second CA with its
    own client certificate (trusted by nobody). Returns a dict of file paths."""

    def run(*args):
        p = subprocess.run(["openssl", *args], cwd=directory, capture_output=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError(f"openssl {' '.join(args)}: {p.stderr.decode(errors='replace')}")

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                "basicConstraints=CA:FALSE\n")
    with open(os.path.join(directory, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    for ca in ("ca", "other-ca"):
        run("req", "-x509", *key, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
            "-subj", f"/CN=longnet test {ca}")
    for leaf, ca, ext in (("server", "ca", "server.ext"), ("client", "ca", "client.ext"),
                          ("rogue-client", "other-ca", "client.ext")):
        run("req", *key, "-keyout", f"{leaf}.key", "-out", f"{leaf}.csr",
            "-subj", "/CN=localhost" if leaf == "server" else f"/CN=longnet test {leaf}")
        run("x509", "-req", "-in", f"{leaf}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{leaf}.pem", "-days", "2", "-extfile", ext)
    return {f"{n}_{e}": os.path.join(directory, f"{n}.{e}")
            for n in ("ca", "other-ca", "server", "client", "rogue-client") for e in ("pem", "key")}


def read(path):
    with open(path, "rb") as f:
        return f.read()


# --- reflection ---
def reflection_call(channel, requests, timeout=10):
    """Sends ServerReflectionRequests on one stream, returns the responses."""
    stub = pb["reflection_grpc"].ServerReflectionStub(channel)
    return list(stub.ServerReflectionInfo(iter(requests), timeout=scaled(timeout)))


def json_lines(text):
    """Each non-empty line parsed as JSON; raises AssertionError naming the first line that is not."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise AssertionError(f"stderr line {n} is not JSON ({e}): {line!r}")
        if not isinstance(obj, dict):
            raise AssertionError(f"stderr line {n} is not a JSON object: {line!r}")
        out.append(obj)
    return out


def deterministic_text(n_bytes, seed=1):
    """n_bytes of ASCII prose-like text (the demo model is byte level: one byte, one token)."""
    words = ("the and of to in that he said unto lord god his shall is was for with they them be it not all "
             "which thou thee him i my land people house day son children king israel upon came").split()
    state = seed * 2654435761 % 2**32 or 1
    out = []
    size = 0
    line = []
    while size < n_bytes:
        state = (state * 1103515245 + 12345) % 2**31
        w = words[state % len(words)]
        line.append(w)
        if len(line) == 14:
            s = " ".join(line) + ".\n"
            s = s[0].upper() + s[1:]
            out.append(s)
            size += len(s)
            line = []
    return "".join(out)[:n_bytes]
