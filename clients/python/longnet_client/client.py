"""Client: the longnet.v1 API (generation, encoding, scoring, tokenization, info, health) over one channel.

Every call has a deadline (the client's `timeout`, or the call's own), returns dataclasses from
longnet_client.results, and raises a LongNetError subclass (longnet_client.errors) when the call fails."""

import codecs
import math
import os
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import grpc

from . import _stubs as pb
from .errors import LongNetError, from_rpc_error
from .results import EncodeResult, Generation, GenerationChunk, Score, ServerInfo, TokenChunk, Tokens

Document = Union[str, Sequence[int]]  # text, or token ids used as they are

POOLINGS = {"mean": 1, "first": 2, "last": 3, "none": 4}
TRUNCATIONS = {"none": 1, "left": 2, "right": 3}
DEFAULT_CHUNK_BYTES = 1 << 20  # EncodeStream pieces: well under gRPC's 4 MiB default message size

_GENERATION_PARAMETERS = ("max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "seed",
                          "ignore_eos", "logprobs", "top_logprobs", "echo")
_HEALTH_CHECK = "/grpc.health.v1.Health/Check"


def _read_pem(value, name):
    """PEM bytes from bytes or a file path; None stays None."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, (str, os.PathLike)):
        with open(value, "rb") as f:
            return f.read()
    raise TypeError(f"{name}: expected a file path or PEM bytes, got {type(value).__name__}")


def _check_timeout(timeout, name="timeout"):
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
            or timeout <= 0:
        raise ValueError(f"{name}: {timeout!r} is not a positive number of seconds (every call has a deadline)")
    return float(timeout)


def _token_ids(ids, name):
    out = list(ids)
    for i, v in enumerate(out):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name}[{i}]: {v!r} is not a token id (int)")
    return pb.common_pb2.TokenIds(ids=out)


def _set_input(message, value, name):
    """`value` (text, or a sequence of token ids) into `message`'s text / ids oneof."""
    if isinstance(value, str):
        message.text = value
    elif isinstance(value, (bytes, bytearray)) or not isinstance(value, Sequence):
        raise TypeError(f"{name}: expected str or a sequence of token ids, got {type(value).__name__}")
    else:
        message.ids.CopyFrom(_token_ids(value, name))


def _choice(value, table, name):
    if value not in table:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(table)}")
    return table[value]


def _file_text_chunks(f, path, chunk_bytes):
    """The UTF-8 text of binary file `f` in pieces of at most chunk_bytes bytes (+3: a character split by a
    read is completed in its piece). Invalid UTF-8 raises ValueError naming the file and byte offset."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0  # bytes read so far
    while True:
        data = f.read(chunk_bytes)
        pending = len(decoder.getstate()[0])
        try:
            text = decoder.decode(data, final=not data)
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text at byte {offset - pending + e.start} ({e.reason})") from None
        offset += len(data)
        if text:
            yield text
        if not data:
            return


class _StreamRequests:
    """EncodeStream's request messages from text pieces. An error raised while producing them (a file that is
    not UTF-8, a piece that is not text) is kept, so that the caller sees it rather than gRPC's
    cancellation; gRPC cancels the call, so the server never encodes a partial document."""

    def __init__(self, first, pieces):
        self.first = first
        self.pieces = pieces
        self.error = None

    def __iter__(self):
        try:
            first = self.first
            for i, piece in enumerate(self.pieces):
                if not isinstance(piece, str):
                    raise TypeError(f"chunks[{i}]: expected str, got {type(piece).__name__}")
                if first is not None:
                    first.text = piece
                    yield first
                    first = None
                else:
                    yield pb.encode_pb2.EncodeStreamRequest(text=piece)
            if first is not None:  # no piece at all: the server refuses the empty document
                yield first
        except Exception as e:  # noqa: BLE001 - re-raised to the caller by Client.encode_chunks
            self.error = e
            raise


class Client:
    """A client of one longnet-server.

    target: "host:port". TLS is on when `tls` is true or any certificate is given: root_certificates (the
    CA that signed the server's certificate; the system's roots when None), client_certificate and
    client_key (mutual TLS) are file paths or PEM bytes. api_key is sent as `authorization: Bearer <key>`.
    timeout: the default deadline of every call, in seconds (calls take their own `timeout=` too).
    options: extra gRPC channel options, as (name, value) pairs."""

    def __init__(self, target: str = "localhost:50051", *, tls: bool = False, root_certificates=None,
                 client_certificate=None, client_key=None, api_key: Optional[str] = None, timeout: float = 60.0,
                 options: Sequence = ()):
        if not isinstance(target, str) or not target:
            raise ValueError(f"target: {target!r} is not a host:port address")
        self.target = target
        self.timeout = _check_timeout(timeout)
        root = _read_pem(root_certificates, "root_certificates")
        cert = _read_pem(client_certificate, "client_certificate")
        key = _read_pem(client_key, "client_key")
        if (cert is None) != (key is None):
            raise ValueError("client_certificate and client_key: give both (mutual TLS) or neither")
        self._metadata = ()
        if api_key is not None:
            if not isinstance(api_key, str) or not api_key.strip() or any(c.isspace() for c in api_key):
                raise ValueError("api_key: must be a non-empty string without whitespace")
            self._metadata = (("authorization", f"Bearer {api_key}"),)
        channel_options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        channel_options += list(options)
        if tls or root is not None or cert is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=root, private_key=key,
                                                       certificate_chain=cert)
            self._channel = grpc.secure_channel(target, credentials, options=channel_options)
        else:
            self._channel = grpc.insecure_channel(target, options=channel_options)
        self._generation = pb.generate_pb2_grpc.GenerationServiceStub(self._channel)
        self._encoding = pb.encode_pb2_grpc.EncodingServiceStub(self._channel)
        self._tokenizer = pb.tokenize_pb2_grpc.TokenizerServiceStub(self._channel)
        self._info = pb.info_pb2_grpc.InfoServiceStub(self._channel)
        self._health = self._channel.unary_unary(
            _HEALTH_CHECK, request_serializer=pb.health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=pb.health_pb2.HealthCheckResponse.FromString)

    # --- lifetime ---
    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- calls ---
    def _deadline(self, timeout):
        return self.timeout if timeout is None else _check_timeout(timeout)

    def _unary(self, method, request, timeout):
        try:
            return method(request, timeout=self._deadline(timeout), metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e

    def info(self, *, timeout: Optional[float] = None) -> ServerInfo:
        """The model, the build, the device and every server limit."""
        return ServerInfo.from_proto(self._unary(self._info.GetInfo, pb.info_pb2.GetInfoRequest(), timeout))

    def health(self, service: str = "", *, timeout: Optional[float] = None) -> str:
        """grpc.health.v1 status of `service` ("" = the server; or e.g. "longnet.v1.GenerationService"):
        "SERVING", "NOT_SERVING", ... Needs no API key."""
        r = self._unary(self._health, pb.health_pb2.HealthCheckRequest(service=service), timeout)
        return pb.health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)

    def tokenize(self, text: str, *, add_special_tokens: bool = False, timeout: Optional[float] = None) -> Tokens:
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        r = self._unary(self._tokenizer.Tokenize,
                        pb.tokenize_pb2.TokenizeRequest(text=text, add_special_tokens=add_special_tokens), timeout)
        return Tokens(ids=list(r.ids), pieces=list(r.pieces))

    def detokenize(self, ids: Sequence[int], *, timeout: Optional[float] = None) -> str:
        request = pb.tokenize_pb2.DetokenizeRequest(ids=_token_ids(ids, "ids").ids)
        return self._unary(self._tokenizer.Detokenize, request, timeout).text

    # --- generation ---
    def _generate_request(self, prompt, stop, stop_token_ids, request_id, params):
        request = pb.generate_pb2.GenerateRequest(request_id=request_id)
        _set_input(request, prompt, "prompt")
        p = request.parameters
        for name in _GENERATION_PARAMETERS:
            value = params[name]
            if value is None:
                continue  # unset: the server's default
            try:
                setattr(p, name, value)
            except (TypeError, ValueError) as e:
                raise type(e)(f"{name}: {value!r}: {e}") from None
        p.stop.extend([stop] if isinstance(stop, str) else list(stop))
        p.stop_token_ids.extend(_token_ids(stop_token_ids, "stop_token_ids").ids)
        return request

    def generate(self, prompt: Document, *, max_new_tokens: Optional[int] = None,
                 temperature: Optional[float] = None, top_k: Optional[int] = None, top_p: Optional[float] = None,
                 repetition_penalty: Optional[float] = None, seed: Optional[int] = None,
                 stop: Union[str, Sequence[str]] = (), stop_token_ids: Sequence[int] = (), ignore_eos: bool = False,
                 logprobs: bool = False, top_logprobs: int = 0, echo: bool = False, request_id: str = "",
                 timeout: Optional[float] = None) -> Generation:
        """Generates a continuation of `prompt` (text, or token ids used as they are). Parameters left None
        take the server's defaults (max_new_tokens 64, temperature 1.0; temperature 0 is greedy)."""
        params = {k: v for k, v in locals().items() if k in _GENERATION_PARAMETERS}
        request = self._generate_request(prompt, stop, stop_token_ids, request_id, params)
        return Generation.from_proto(self._unary(self._generation.Generate, request, timeout))

    def generate_stream(self, prompt: Document, *, max_new_tokens: Optional[int] = None,
                        temperature: Optional[float] = None, top_k: Optional[int] = None,
                        top_p: Optional[float] = None, repetition_penalty: Optional[float] = None,
                        seed: Optional[int] = None, stop: Union[str, Sequence[str]] = (),
                        stop_token_ids: Sequence[int] = (), ignore_eos: bool = False, logprobs: bool = False,
                        top_logprobs: int = 0, echo: bool = False, request_id: str = "",
                        timeout: Optional[float] = None) -> Iterator[GenerationChunk]:
        """Like generate, as the tokens come: an iterator of GenerationChunk whose texts concatenate to the
        generated text. Stopping the iteration early (break, close()) cancels the generation on the server.
        `timeout` bounds the whole stream."""
        params = {k: v for k, v in locals().items() if k in _GENERATION_PARAMETERS}
        request = self._generate_request(prompt, stop, stop_token_ids, request_id, params)
        call = self._generation.GenerateStream(request, timeout=self._deadline(timeout), metadata=self._metadata)
        return self._generation_chunks(call)

    @staticmethod
    def _generation_chunks(call):
        try:
            for message in call:
                yield GenerationChunk.from_proto(message)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        finally:
            call.cancel()  # nothing when the stream has ended; frees the server's work when abandoned

    # --- encoding ---
    @staticmethod
    def _options(pooling, normalize, truncation, max_tokens, score, token_states=False, token_logprobs=False):
        return pb.encode_pb2.EncodeOptions(
            pooling=_choice(pooling, POOLINGS, "pooling"), normalize=normalize,
            truncation=_choice(truncation, TRUNCATIONS, "truncation"), max_tokens=max_tokens, score=score,
            return_token_states=token_states, return_token_logprobs=token_logprobs)

    @staticmethod
    def _document(document, document_id):
        d = pb.encode_pb2.Document(id=document_id)
        _set_input(d, document, "document")
        return d

    def encode(self, document: Document, *, pooling: str = "mean", normalize: bool = False,
               truncation: str = "none", max_tokens: int = 0, score: bool = False, document_id: str = "",
               request_id: str = "", timeout: Optional[float] = None) -> EncodeResult:
        """Encodes a document that fits one message (text or token ids): the pooled final-layer-norm state
        (pooling mean | first | last | none; normalize to unit length), and with score=True its likelihood
        under a decoder model. truncation none refuses a document over the limit (max_tokens, or the
        server's max_document_tokens); left keeps the last tokens, right the first."""
        request = pb.encode_pb2.EncodeRequest(document=self._document(document, document_id),
                                              options=self._options(pooling, normalize, truncation, max_tokens,
                                                                    score), request_id=request_id)
        r = self._unary(self._encoding.Encode, request, timeout)
        return EncodeResult.from_proto(r.result, r.request_id)

    def score(self, document: Document, *, truncation: str = "none", max_tokens: int = 0, request_id: str = "",
              timeout: Optional[float] = None) -> Score:
        """The document's log-likelihood, bits per token and bits per byte (decoder models)."""
        result = self.encode(document, pooling="none", truncation=truncation, max_tokens=max_tokens, score=True,
                             request_id=request_id, timeout=timeout)
        return result.score

    def encode_chunks(self, chunks: Iterable[str], *, pooling: str = "mean", normalize: bool = False,
                      truncation: str = "none", max_tokens: int = 0, score: bool = False,
                      token_states: bool = False, token_logprobs: bool = False,
                      on_token_chunk: Optional[Callable[[TokenChunk], None]] = None, document_id: str = "",
                      request_id: str = "", timeout: Optional[float] = None) -> EncodeResult:
        """Encodes one document sent as text pieces through EncodeStream (for documents past one message's
        size). The pieces are read lazily, as gRPC sends them. With token_states (each token's final-layer-
        norm state) or token_logprobs (with score: each token's log-probability), every TokenChunk is passed
        to on_token_chunk as it arrives. `timeout` bounds the whole call."""
        if (token_states or token_logprobs) and on_token_chunk is None:
            raise ValueError("on_token_chunk: needed to receive token_states / token_logprobs")
        first = pb.encode_pb2.EncodeStreamRequest(
            options=self._options(pooling, normalize, truncation, max_tokens, score, token_states, token_logprobs),
            document_id=document_id, request_id=request_id)
        requests = _StreamRequests(first, chunks)
        call = self._encoding.EncodeStream(iter(requests), timeout=self._deadline(timeout), metadata=self._metadata)
        result = None
        try:
            for message in call:
                if message.WhichOneof("payload") == "chunk":
                    if on_token_chunk is not None:
                        on_token_chunk(TokenChunk.from_proto(message.chunk))
                elif message.WhichOneof("payload") == "result":
                    result = EncodeResult.from_proto(message.result, message.request_id)
        except grpc.RpcError as e:
            if requests.error is not None:
                raise requests.error from None
            raise from_rpc_error(e) from e
        finally:
            call.cancel()  # nothing after a complete call; stops the server when on_token_chunk raised
        if result is None:
            raise LongNetError(grpc.StatusCode.INTERNAL, "EncodeStream ended without a result message")
        return result

    def encode_file(self, path: Union[str, os.PathLike], *, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                    pooling: str = "mean", normalize: bool = False, truncation: str = "none", max_tokens: int = 0,
                    score: bool = False, token_states: bool = False, token_logprobs: bool = False,
                    on_token_chunk: Optional[Callable[[TokenChunk], None]] = None, document_id: str = "",
                    request_id: str = "", timeout: Optional[float] = None) -> EncodeResult:
        """Encodes a UTF-8 text file of any size (up to the server's max_document_bytes), read and sent in
        pieces of chunk_bytes through EncodeStream; options as encode_chunks. A long document takes long to
        encode: give a `timeout` that fits it."""
        if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
            raise ValueError(f"chunk_bytes: {chunk_bytes!r} is not a positive number of bytes")
        with open(path, "rb") as f:  # a missing or unreadable file fails here, naming it
            return self.encode_chunks(_file_text_chunks(f, os.fspath(path), chunk_bytes), pooling=pooling,
                                      normalize=normalize, truncation=truncation, max_tokens=max_tokens,
                                      score=score, token_states=token_states, token_logprobs=token_logprobs,
                                      on_token_chunk=on_token_chunk, document_id=document_id,
                                      request_id=request_id, timeout=timeout)
