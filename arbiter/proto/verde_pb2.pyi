from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IdentityReply(_message.Message):
    __slots__ = ("public_key",)
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    public_key: str
    def __init__(self, public_key: _Optional[str] = ...) -> None: ...

class JobRequest(_message.Message):
    __slots__ = ("spec_json",)
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    spec_json: str
    def __init__(self, spec_json: _Optional[str] = ...) -> None: ...

class JobRef(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("job_id", "state", "steps_done", "steps_total", "error")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STEPS_DONE_FIELD_NUMBER: _ClassVar[int]
    STEPS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: str
    steps_done: int
    steps_total: int
    error: str
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[str] = ..., steps_done: _Optional[int] = ..., steps_total: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class SignedEnvelope(_message.Message):
    __slots__ = ("message_json",)
    MESSAGE_JSON_FIELD_NUMBER: _ClassVar[int]
    message_json: str
    def __init__(self, message_json: _Optional[str] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("query_json",)
    QUERY_JSON_FIELD_NUMBER: _ClassVar[int]
    query_json: str
    def __init__(self, query_json: _Optional[str] = ...) -> None: ...

class TensorHeader(_message.Message):
    __slots__ = ("name", "dtype", "shape", "nbytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    NBYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    nbytes: int
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., nbytes: _Optional[int] = ...) -> None: ...

class AnswerChunk(_message.Message):
    __slots__ = ("signed_json", "tensors", "data", "silence_signature")
    SIGNED_JSON_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SILENCE_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    signed_json: str
    tensors: _containers.RepeatedCompositeFieldContainer[TensorHeader]
    data: bytes
    silence_signature: bytes
    def __init__(self, signed_json: _Optional[str] = ..., tensors: _Optional[_Iterable[_Union[TensorHeader, _Mapping]]] = ..., data: _Optional[bytes] = ..., silence_signature: _Optional[bytes] = ...) -> None: ...

class StateChunk(_message.Message):
    __slots__ = ("tensors", "data")
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    tensors: _containers.RepeatedCompositeFieldContainer[TensorHeader]
    data: bytes
    def __init__(self, tensors: _Optional[_Iterable[_Union[TensorHeader, _Mapping]]] = ..., data: _Optional[bytes] = ...) -> None: ...

class StateRef(_message.Message):
    __slots__ = ("root",)
    ROOT_FIELD_NUMBER: _ClassVar[int]
    root: str
    def __init__(self, root: _Optional[str] = ...) -> None: ...

class FetchStateRequest(_message.Message):
    __slots__ = ("job_id", "names")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, job_id: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ...) -> None: ...

class StateEntriesChunk(_message.Message):
    __slots__ = ("payload_json", "tensors", "data")
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    payload_json: str
    tensors: _containers.RepeatedCompositeFieldContainer[TensorHeader]
    data: bytes
    def __init__(self, payload_json: _Optional[str] = ..., tensors: _Optional[_Iterable[_Union[TensorHeader, _Mapping]]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ChallengeRequest(_message.Message):
    __slots__ = ("nonce", "address")
    NONCE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    nonce: str
    address: str
    def __init__(self, nonce: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class ProviderEntry(_message.Message):
    __slots__ = ("address", "signed_result_json", "endpoint_json")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SIGNED_RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_JSON_FIELD_NUMBER: _ClassVar[int]
    address: str
    signed_result_json: str
    endpoint_json: str
    def __init__(self, address: _Optional[str] = ..., signed_result_json: _Optional[str] = ..., endpoint_json: _Optional[str] = ...) -> None: ...

class OpenDisputeRequest(_message.Message):
    __slots__ = ("spec_json", "providers")
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    spec_json: str
    providers: _containers.RepeatedCompositeFieldContainer[ProviderEntry]
    def __init__(self, spec_json: _Optional[str] = ..., providers: _Optional[_Iterable[_Union[ProviderEntry, _Mapping]]] = ...) -> None: ...

class DisputeRef(_message.Message):
    __slots__ = ("dispute_id",)
    DISPUTE_ID_FIELD_NUMBER: _ClassVar[int]
    dispute_id: str
    def __init__(self, dispute_id: _Optional[str] = ...) -> None: ...

class DisputeStatus(_message.Message):
    __slots__ = ("dispute_id", "job_id", "status", "phase", "rounds", "verdict_json", "error")
    DISPUTE_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    VERDICT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    dispute_id: str
    job_id: str
    status: str
    phase: str
    rounds: int
    verdict_json: str
    error: str
    def __init__(self, dispute_id: _Optional[str] = ..., job_id: _Optional[str] = ..., status: _Optional[str] = ..., phase: _Optional[str] = ..., rounds: _Optional[int] = ..., verdict_json: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class CertificateReply(_message.Message):
    __slots__ = ("certificate_json",)
    CERTIFICATE_JSON_FIELD_NUMBER: _ClassVar[int]
    certificate_json: str
    def __init__(self, certificate_json: _Optional[str] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("status", "limit")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    status: str
    limit: int
    def __init__(self, status: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class DisputeList(_message.Message):
    __slots__ = ("disputes",)
    DISPUTES_FIELD_NUMBER: _ClassVar[int]
    disputes: _containers.RepeatedCompositeFieldContainer[DisputeStatus]
    def __init__(self, disputes: _Optional[_Iterable[_Union[DisputeStatus, _Mapping]]] = ...) -> None: ...

class WitnessRequest(_message.Message):
    __slots__ = ("statement_json", "query_json")
    STATEMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    QUERY_JSON_FIELD_NUMBER: _ClassVar[int]
    statement_json: str
    query_json: str
    def __init__(self, statement_json: _Optional[str] = ..., query_json: _Optional[str] = ...) -> None: ...

class CoSignature(_message.Message):
    __slots__ = ("public_key", "pop", "signature")
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    POP_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    public_key: bytes
    pop: bytes
    signature: bytes
    def __init__(self, public_key: _Optional[bytes] = ..., pop: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...
