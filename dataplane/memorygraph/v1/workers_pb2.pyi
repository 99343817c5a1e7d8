from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PeerReassignRequest(_message.Message):
    __slots__ = ("lease", "handover", "shard", "owner", "shard_epoch")
    LEASE_FIELD_NUMBER: _ClassVar[int]
    HANDOVER_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    SHARD_EPOCH_FIELD_NUMBER: _ClassVar[int]
    lease: str
    handover: bool
    shard: int
    owner: int
    shard_epoch: int
    def __init__(self, lease: _Optional[str] = ..., handover: _Optional[bool] = ..., shard: _Optional[int] = ..., owner: _Optional[int] = ..., shard_epoch: _Optional[int] = ...) -> None: ...

class PeerShardsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PeerShardsResponse(_message.Message):
    __slots__ = ("owners", "epochs", "map_epoch", "members", "unfinished_shard", "unfinished_source", "undelivered")
    OWNERS_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    MAP_EPOCH_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    UNFINISHED_SHARD_FIELD_NUMBER: _ClassVar[int]
    UNFINISHED_SOURCE_FIELD_NUMBER: _ClassVar[int]
    UNDELIVERED_FIELD_NUMBER: _ClassVar[int]
    owners: _containers.RepeatedScalarFieldContainer[int]
    epochs: _containers.RepeatedScalarFieldContainer[int]
    map_epoch: int
    members: int
    unfinished_shard: int
    unfinished_source: int
    undelivered: int
    def __init__(self, owners: _Optional[_Iterable[int]] = ..., epochs: _Optional[_Iterable[int]] = ..., map_epoch: _Optional[int] = ..., members: _Optional[int] = ..., unfinished_shard: _Optional[int] = ..., unfinished_source: _Optional[int] = ..., undelivered: _Optional[int] = ...) -> None: ...

class PeerTakeShardRequest(_message.Message):
    __slots__ = ("shard",)
    SHARD_FIELD_NUMBER: _ClassVar[int]
    shard: int
    def __init__(self, shard: _Optional[int] = ...) -> None: ...

class PeerTakeShardResponse(_message.Message):
    __slots__ = ("shard_epoch", "copied_keys", "fenced_seconds")
    SHARD_EPOCH_FIELD_NUMBER: _ClassVar[int]
    COPIED_KEYS_FIELD_NUMBER: _ClassVar[int]
    FENCED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    shard_epoch: int
    copied_keys: int
    fenced_seconds: float
    def __init__(self, shard_epoch: _Optional[int] = ..., copied_keys: _Optional[int] = ..., fenced_seconds: _Optional[float] = ...) -> None: ...

class PeerReassignResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PeerDropRequest(_message.Message):
    __slots__ = ("shard",)
    SHARD_FIELD_NUMBER: _ClassVar[int]
    shard: int
    def __init__(self, shard: _Optional[int] = ...) -> None: ...

class PeerDropResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PeerReadRequest(_message.Message):
    __slots__ = ("family", "keys", "scan", "start", "end", "reverse", "limit", "values", "event_shard")
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    SCAN_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    REVERSE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    EVENT_SHARD_FIELD_NUMBER: _ClassVar[int]
    family: str
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    scan: bool
    start: bytes
    end: bytes
    reverse: bool
    limit: int
    values: bool
    event_shard: int
    def __init__(self, family: _Optional[str] = ..., keys: _Optional[_Iterable[bytes]] = ..., scan: _Optional[bool] = ..., start: _Optional[bytes] = ..., end: _Optional[bytes] = ..., reverse: _Optional[bool] = ..., limit: _Optional[int] = ..., values: _Optional[bool] = ..., event_shard: _Optional[int] = ...) -> None: ...

class PeerReadResponse(_message.Message):
    __slots__ = ("keys", "values", "found", "resume")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    values: _containers.RepeatedScalarFieldContainer[bytes]
    found: _containers.RepeatedScalarFieldContainer[bool]
    resume: bytes
    def __init__(self, keys: _Optional[_Iterable[bytes]] = ..., values: _Optional[_Iterable[bytes]] = ..., found: _Optional[_Iterable[bool]] = ..., resume: _Optional[bytes] = ...) -> None: ...

class PeerLockRequest(_message.Message):
    __slots__ = ("origin", "lease_seconds")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    origin: int
    lease_seconds: float
    def __init__(self, origin: _Optional[int] = ..., lease_seconds: _Optional[float] = ...) -> None: ...

class PeerLockResponse(_message.Message):
    __slots__ = ("lease",)
    LEASE_FIELD_NUMBER: _ClassVar[int]
    lease: str
    def __init__(self, lease: _Optional[str] = ...) -> None: ...

class PeerUnlockRequest(_message.Message):
    __slots__ = ("lease",)
    LEASE_FIELD_NUMBER: _ClassVar[int]
    lease: str
    def __init__(self, lease: _Optional[str] = ...) -> None: ...

class PeerUnlockResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PeerApplyRequest(_message.Message):
    __slots__ = ("origin", "sequence", "part", "lease")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PART_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    origin: int
    sequence: int
    part: bytes
    lease: str
    def __init__(self, origin: _Optional[int] = ..., sequence: _Optional[int] = ..., part: _Optional[bytes] = ..., lease: _Optional[str] = ...) -> None: ...

class PeerApplyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RelayCall(_message.Message):
    __slots__ = ("method", "metadata", "timeout_seconds")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    method: str
    metadata: _containers.RepeatedCompositeFieldContainer[RelayMetadata]
    timeout_seconds: float
    def __init__(self, method: _Optional[str] = ..., metadata: _Optional[_Iterable[_Union[RelayMetadata, _Mapping]]] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class RelayMetadata(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class RelayAnswer(_message.Message):
    __slots__ = ("code", "details", "response", "closing")
    CODE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    CLOSING_FIELD_NUMBER: _ClassVar[int]
    code: int
    details: str
    response: bytes
    closing: bool
    def __init__(self, code: _Optional[int] = ..., details: _Optional[str] = ..., response: _Optional[bytes] = ..., closing: _Optional[bool] = ...) -> None: ...
