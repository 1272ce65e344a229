"""The protoc-generated modules, imported from the stub directory the build makes.

The generated code imports itself absolutely (`from longnet.v1 import common_pb2`), so the stub directory
(<build>/clients/python/stubs, made by the CMake target longnet_client_python_stubs) must be on the import
path: put it on PYTHONPATH next to clients/python. Health's messages are generated into the same directory
(grpc/health/v1/health_pb2.py) and loaded from their file, since a `grpc` package of stubs cannot be
imported beside grpcio's own."""

import importlib.util
import os
import sys

_HINT = ("the longnet.v1 Python stubs are not importable: build the CMake target longnet_client_python_stubs "
         "and put its directory (<build>/clients/python/stubs) on PYTHONPATH")

__all__ = ["common_pb2", "encode_pb2", "encode_pb2_grpc", "generate_pb2", "generate_pb2_grpc", "info_pb2",
           "info_pb2_grpc", "tokenize_pb2", "tokenize_pb2_grpc", "health_pb2"]

try:
    from longnet.v1 import common_pb2, encode_pb2, encode_pb2_grpc
    from longnet.v1 import generate_pb2, generate_pb2_grpc, info_pb2, info_pb2_grpc
    from longnet.v1 import tokenize_pb2, tokenize_pb2_grpc
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(f"{_HINT} ({e})") from e


def _load_health():
    stub_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(common_pb2.__file__))))
    path = os.path.join(stub_root, "grpc", "health", "v1", "health_pb2.py")
    if not os.path.isfile(path):
        raise ImportError(f"{path} is missing: rebuild the CMake target longnet_client_python_stubs")
    name = "longnet_client._health_pb2"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


health_pb2 = _load_health()
