"""Errors of the longnet.v1 API as Python exceptions.

Every failed call raises a LongNetError (or the subclass for its status code) carrying the gRPC status code's
name and the server's message, which names the field or limit at fault (see docs/server.md, "Validation and
status codes")."""

import grpc


class LongNetError(Exception):
    """A call that ended with a gRPC status other than OK.

    code: the status code's name ("INVALID_ARGUMENT", "UNAVAILABLE", ...); status: the grpc.StatusCode;
    message: the server's (or gRPC's) description."""

    def __init__(self, status, message):
        self.status = status
        self.code = status.name
        self.message = message or ""
        super().__init__(f"{self.code}: {self.message}")


class InvalidArgumentError(LongNetError):
    """A request the server refused as it is (a bad parameter, a document over a limit)."""


class UnauthenticatedError(LongNetError):
    """No API key, or one the server does not know (authorization: Bearer <key>)."""


class UnavailableError(LongNetError):
    """The server cannot be reached, is not ready yet, or is draining; the TLS handshake failed."""


class ResourceExhaustedError(LongNetError):
    """The server's queue or memory is full now: retry later."""


class DeadlineExceededError(LongNetError):
    """The call's deadline (the client's timeout) passed before the server answered."""


class FailedPreconditionError(LongNetError):
    """The model cannot do this (e.g. generation with an encoder-only model)."""


class CancelledError(LongNetError):
    """The call was cancelled."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.CANCELLED: CancelledError,
}


def from_rpc_error(error):
    """The LongNetError for a grpc.RpcError (a call's failure)."""
    status = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    return _BY_CODE.get(status, LongNetError)(status, message)
