"""What the client returns: plain dataclasses made from the longnet.v1 responses (no protobuf objects)."""

from dataclasses import dataclass, field, fields
from typing import List, Optional


def _copy_fields(cls, message):
    """cls(**{name: message.name}) for every field of the dataclass `cls` (scalar fields of the same name)."""
    return cls(**{f.name: getattr(message, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Timings:
    """Seconds the request spent in each stage (the server's clock)."""

    queue_seconds: float
    prefill_seconds: float
    decode_seconds: float
    total_seconds: float
    time_to_first_token_seconds: float

    @classmethod
    def from_proto(cls, message):
        return _copy_fields(cls, message)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    generated_tokens: int

    @classmethod
    def from_proto(cls, message):
        return _copy_fields(cls, message)


@dataclass(frozen=True)
class TokenAlternative:
    id: int
    text: str
    logprob: float


@dataclass(frozen=True)
class Token:
    """One generated token: its id, its own bytes as text (a partial character shows as U+FFFD), and its
    log-probability and most likely alternatives when they were asked for."""

    id: int
    text: str
    logprob: Optional[float] = None
    top_logprobs: List[TokenAlternative] = field(default_factory=list)

    @classmethod
    def from_proto(cls, message):
        return cls(id=message.id, text=message.text,
                   logprob=message.logprob if message.HasField("logprob") else None,
                   top_logprobs=[TokenAlternative(a.id, a.text, a.logprob) for a in message.top_logprobs])


# FinishReason values by their short names.
FINISH_REASONS = {0: "unspecified", 1: "length", 2: "eos", 3: "stop_sequence", 4: "stop_token", 5: "cancelled"}


@dataclass(frozen=True)
class Generation:
    """A whole generation (Client.generate)."""

    text: str  # the generated text (the prompt's text first when echo was asked)
    tokens: List[Token]
    finish_reason: str  # length | eos | stop_sequence | stop_token | cancelled
    usage: Usage
    timings: Timings
    request_id: str
    seed: int  # the seed used: the same seed and parameters give the same tokens
    prompt_token_ids: List[int] = field(default_factory=list)  # when echo was asked

    @classmethod
    def from_proto(cls, r):
        return cls(text=r.text, tokens=[Token.from_proto(t) for t in r.tokens],
                   finish_reason=FINISH_REASONS.get(r.finish_reason, str(r.finish_reason)),
                   usage=Usage.from_proto(r.usage), timings=Timings.from_proto(r.timings),
                   request_id=r.request_id, seed=r.seed, prompt_token_ids=list(r.prompt_token_ids))


@dataclass(frozen=True)
class GenerationChunk:
    """One message of Client.generate_stream: the tokens new in it and the text they complete (possibly
    empty while it may still become a stop sequence). The last chunk has finish_reason, usage and timings."""

    text: str
    tokens: List[Token]
    request_id: str
    seed: int
    prompt_token_ids: List[int] = field(default_factory=list)  # first chunk only, when echo was asked
    finish_reason: Optional[str] = None
    usage: Optional[Usage] = None
    timings: Optional[Timings] = None

    @classmethod
    def from_proto(cls, r):
        return cls(text=r.text, tokens=[Token.from_proto(t) for t in r.tokens], request_id=r.request_id,
                   seed=r.seed, prompt_token_ids=list(r.prompt_token_ids),
                   finish_reason=FINISH_REASONS[r.finish_reason] if r.finish_reason else None,
                   usage=Usage.from_proto(r.usage) if r.HasField("usage") else None,
                   timings=Timings.from_proto(r.timings) if r.HasField("timings") else None)


@dataclass(frozen=True)
class Score:
    """A document's likelihood under a decoder model."""

    log_likelihood: float  # natural log, summed over every token but the first
    scored_tokens: int
    bits_per_token: float
    bits_per_byte: float  # by the bytes of the text (0 when the document was sent as ids)
    bytes: int

    @classmethod
    def from_proto(cls, message):
        return _copy_fields(cls, message)


@dataclass(frozen=True)
class EncodeResult:
    id: str
    pooled: List[float]  # embed_dim floats, empty with pooling "none"
    tokens: int  # tokens encoded (after truncation)
    truncated_tokens: int
    score: Optional[Score]  # when score was asked
    timings: Timings
    request_id: str

    @classmethod
    def from_proto(cls, result, request_id):
        return cls(id=result.id, pooled=list(result.pooled), tokens=result.tokens,
                   truncated_tokens=result.truncated_tokens,
                   score=Score.from_proto(result.score) if result.HasField("score") else None,
                   timings=Timings.from_proto(result.timings), request_id=request_id)


@dataclass(frozen=True)
class TokenChunk:
    """Rows [first_position, first_position + rows) of a document streamed by Client.encode_file."""

    first_position: int
    rows: int
    dim: int
    states: List[float]  # rows x dim, row-major, when token_states was asked
    logprobs: List[float]  # one per row when token_logprobs was asked (0 for the document's first token)

    @classmethod
    def from_proto(cls, c):
        return cls(first_position=c.first_position, rows=c.rows, dim=c.dim, states=list(c.states),
                   logprobs=list(c.logprobs))


@dataclass(frozen=True)
class Tokens:
    ids: List[int]
    pieces: List[str]  # each id's bytes as text (empty for special ids)


@dataclass(frozen=True)
class DilatedBranch:
    segment_length: int
    dilation: int


MODEL_TYPES = {0: "unspecified", 1: "decoder", 2: "encoder", 3: "encoder_decoder"}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    type: str  # decoder | encoder | encoder_decoder
    vocab_size: int
    embed_dim: int
    attention_heads: int
    layers: int
    encoder_layers: int
    branches: List[DilatedBranch]
    dtype: str
    tokenizer: str
    bos_id: int
    eos_id: int
    pad_id: int
    max_context_tokens: int
    xpos: bool

    @classmethod
    def from_proto(cls, m):
        values = {f.name: getattr(m, f.name) for f in fields(cls) if f.name not in ("type", "branches")}
        return cls(type=MODEL_TYPES.get(m.type, str(m.type)),
                   branches=[DilatedBranch(b.segment_length, b.dilation) for b in m.branches], **values)


@dataclass(frozen=True)
class ServerLimits:
    """Every limit a request must respect (past a size limit: InvalidArgumentError naming it; past a queue
    limit: ResourceExhaustedError)."""

    max_queue_requests: int
    max_queue_tokens: int
    max_batch_sequences: int
    max_batch_tokens: int
    max_message_bytes: int
    max_prompt_tokens: int
    max_new_tokens: int
    max_document_tokens: int
    max_batch_documents: int
    max_stop_sequences: int
    max_stop_sequence_bytes: int
    max_top_logprobs: int
    memory_budget_bytes: int
    max_document_bytes: int

    @classmethod
    def from_proto(cls, message):
        return _copy_fields(cls, message)


@dataclass(frozen=True)
class ServerInfo:
    model: ModelInfo
    version: str
    cuda_compiled: bool
    device: str  # "cpu" or "cuda:N"
    limits: ServerLimits

    @classmethod
    def from_proto(cls, r):
        return cls(model=ModelInfo.from_proto(r.model), version=r.build.version, cuda_compiled=r.build.cuda_compiled,
                   device=r.device, limits=ServerLimits.from_proto(r.limits))
