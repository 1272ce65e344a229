"""Python client of longnet-server's gRPC API (package longnet.v1).

    from longnet_client import Client
    with Client("localhost:50051") as client:
        print(client.generate("In the beginning", max_new_tokens=32, temperature=0).text)

The generated stubs must be importable: PYTHONPATH=clients/python:<build>/clients/python/stubs (see
clients/python/README.md)."""

from .client import DEFAULT_CHUNK_BYTES, POOLINGS, TRUNCATIONS, Client
from .errors import (CancelledError, DeadlineExceededError, FailedPreconditionError, InvalidArgumentError,
                     LongNetError, ResourceExhaustedError, UnauthenticatedError, UnavailableError)
from .results import (DilatedBranch, EncodeResult, Generation, GenerationChunk, ModelInfo, Score, ServerInfo,
                      ServerLimits, Timings, Token, TokenAlternative, TokenChunk, Tokens, Usage)

__all__ = [
    "Client", "DEFAULT_CHUNK_BYTES", "POOLINGS", "TRUNCATIONS",
    "LongNetError", "InvalidArgumentError", "UnauthenticatedError", "UnavailableError", "ResourceExhaustedError",
    "DeadlineExceededError", "FailedPreconditionError", "CancelledError",
    "DilatedBranch", "EncodeResult", "Generation", "GenerationChunk", "ModelInfo", "Score", "ServerInfo",
    "ServerLimits", "Timings", "Token", "TokenAlternative", "TokenChunk", "Tokens", "Usage",
]
