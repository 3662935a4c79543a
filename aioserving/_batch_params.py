"""TF Serving's ``BatchingParameters``: the config message, its parser and its checks.

``tensorflow-serving-api`` does not ship ``session_bundle_config_pb2``, so the
``tensorflow.serving.BatchingParameters`` message is described here at runtime
(same package, message name, field names, numbers and types as TF Serving's
``servables/tensorflow/session_bundle_config.proto``) in a private descriptor
pool, and text-format files are parsed into it with
``google.protobuf.text_format``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf import wrappers_pb2

from .errors import Code, ServingError

__all__ = ["BatchingParameters", "batching_parameters_message_class"]

_FD = descriptor_pb2.FieldDescriptorProto

# (name, number, wrapper message or scalar type, label)
_FIELDS: tuple[tuple[str, int, str | int, int], ...] = (
    ("max_batch_size", 1, ".google.protobuf.Int64Value", _FD.LABEL_OPTIONAL),
    ("batch_timeout_micros", 2, ".google.protobuf.Int64Value", _FD.LABEL_OPTIONAL),
    ("max_enqueued_batches", 3, ".google.protobuf.Int64Value", _FD.LABEL_OPTIONAL),
    ("num_batch_threads", 4, ".google.protobuf.Int64Value", _FD.LABEL_OPTIONAL),
    ("thread_pool_name", 5, ".google.protobuf.StringValue", _FD.LABEL_OPTIONAL),
    ("allowed_batch_sizes", 6, _FD.TYPE_INT64, _FD.LABEL_REPEATED),
    ("pad_variable_length_inputs", 7, _FD.TYPE_BOOL, _FD.LABEL_OPTIONAL),
    ("enable_large_batch_splitting", 8, ".google.protobuf.BoolValue", _FD.LABEL_OPTIONAL),
    ("max_execution_batch_size", 9, ".google.protobuf.Int64Value", _FD.LABEL_OPTIONAL),
)

_message_class: Any = None


def batching_parameters_message_class() -> Any:
    """The generated class for ``tensorflow.serving.BatchingParameters``."""
    global _message_class
    if _message_class is None:
        pool = descriptor_pool.DescriptorPool()
        wrappers = descriptor_pb2.FileDescriptorProto()
        wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
        pool.Add(wrappers)
        fdp = descriptor_pb2.FileDescriptorProto(
            name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
            package="tensorflow.serving",
            syntax="proto3",
            dependency=["google/protobuf/wrappers.proto"],
        )
        msg = fdp.message_type.add(name="BatchingParameters")
        for name, number, typ, label in _FIELDS:
            f = msg.field.add(name=name, number=number, label=label)
            if isinstance(typ, str):
                f.type = _FD.TYPE_MESSAGE
                f.type_name = typ
            else:
                f.type = typ
        pool.Add(fdp)
        desc = pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
        _message_class = message_factory.GetMessageClass(desc)
    return _message_class


def _default_num_batch_threads() -> int:
    # TF's SharedBatchScheduler default: port::MaxParallelism() (schedulable CPUs).
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def _invalid(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


@dataclass(frozen=True)
class BatchingParameters:
    """Mirrors ``tensorflow.serving.BatchingParameters``; unset fields take TF's defaults.

    Defaults are those of TF's ``SharedBatchScheduler::QueueOptions`` / ``Options``
    (what TF Serving uses for a field absent from the file), except ``adaptive``,
    which is aioserving's own ``--batching_mode=adaptive``.
    Constructing an instance validates it (TF Serving's checks and messages).
    """

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=_default_num_batch_threads)
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = 0  # 0 = max_batch_size
    adaptive: bool = False
    #: aioserving's own: a batch also closes at this many input bytes (0 = no limit). The
    #: adaptive default sets 1 MiB: past that TF's per-call cost is amortized while activation
    #: memory keeps growing with the batch (64x64x3 images: 21 per batch).
    max_batch_bytes: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_batch_sizes", tuple(int(s) for s in self.allowed_batch_sizes))
        if self.num_batch_threads < 1:
            raise _invalid(f"num_batch_threads must be positive; was {self.num_batch_threads}")
        if self.max_batch_size <= 0:
            raise _invalid(f"input_batch_size_limit must be positive; was {self.max_batch_size}")
        if self.batch_timeout_micros < 0:
            raise _invalid(f"batch_timeout_micros must be non-negative; was {self.batch_timeout_micros}")
        if self.max_enqueued_batches <= 0:
            if self.enable_large_batch_splitting or self.max_enqueued_batches < 0:
                raise _invalid(f"max_enqueued_batches must be positive; was {self.max_enqueued_batches}")
            # SharedBatchScheduler::AddQueue rewrites 0 to 1 when not splitting.
            object.__setattr__(self, "max_enqueued_batches", 1)
        if self.max_batch_bytes < 0:
            raise _invalid(f"max_batch_bytes must be non-negative; was {self.max_batch_bytes}")
        if self.max_execution_batch_size < 0:
            raise _invalid(f"max_execution_batch_size must be positive; was {self.max_execution_batch_size}")
        if self.enable_large_batch_splitting and self.max_batch_size < self.execution_batch_size:
            raise _invalid(
                "When enable_large_batch_splitting is true, input_batch_size_limit must be "
                "greater than or equal to max_execution_batch_size."
            )
        sizes = self.allowed_batch_sizes
        if sizes:
            if any(b <= a for a, b in zip(sizes, sizes[1:])) or sizes[0] <= 0:
                raise _invalid("allowed_batch_sizes entries must be monotonically increasing")
            if self.enable_large_batch_splitting:
                if sizes[-1] > self.max_batch_size:
                    raise _invalid(
                        "Last entry in allowed_batch_sizes must be less than or equal to "
                        f"max_batch_size; last entry was {sizes[-1]}; expected {self.max_batch_size}"
                    )
                if sizes[-1] != self.execution_batch_size:
                    raise _invalid(
                        "Last entry in allowed_batch_sizes must be equal to "
                        f"max_execution_batch_size; last entry was {sizes[-1]}; "
                        f"expected {self.execution_batch_size}"
                    )
            elif sizes[-1] != self.max_batch_size:
                raise _invalid(
                    "Last entry in allowed_batch_sizes must match max_batch_size; last entry "
                    f"was {sizes[-1]}; expected {self.max_batch_size}"
                )

    @property
    def execution_batch_size(self) -> int:
        """Rows per executed batch: ``max_execution_batch_size`` only applies with splitting."""
        if self.enable_large_batch_splitting and self.max_execution_batch_size > 0:
            return self.max_execution_batch_size
        return self.max_batch_size

    @classmethod
    def from_proto(cls, msg: Any, *, adaptive: bool = False) -> BatchingParameters:
        kwargs: dict[str, Any] = {"adaptive": adaptive}
        for name in (
            "max_batch_size",
            "batch_timeout_micros",
            "max_enqueued_batches",
            "num_batch_threads",
            "enable_large_batch_splitting",
            "max_execution_batch_size",
        ):
            if msg.HasField(name):
                kwargs[name] = getattr(msg, name).value
        kwargs["allowed_batch_sizes"] = tuple(msg.allowed_batch_sizes)
        kwargs["pad_variable_length_inputs"] = msg.pad_variable_length_inputs
        return cls(**kwargs)

    @classmethod
    def from_text(cls, text: str, *, adaptive: bool = False) -> BatchingParameters:
        """Parse a text-format ``tensorflow.serving.BatchingParameters`` and validate it."""
        msg = batching_parameters_message_class()()
        try:
            text_format.Parse(text, msg)
        except text_format.ParseError as exc:
            raise _invalid(f"Error parsing text-format tensorflow.serving.BatchingParameters: {exc}") from None
        return cls.from_proto(msg, adaptive=adaptive)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, adaptive: bool = False) -> BatchingParameters:
        """Read and parse a ``--batching_parameters_file`` / ``batching_params.pbtxt`` (blocking I/O)."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise ServingError(Code.NOT_FOUND, f"{os.fspath(path)}; No such file or directory") from None
        except OSError as exc:
            raise ServingError(Code.FAILED_PRECONDITION, f"{os.fspath(path)}; {exc.strerror}") from None
        return cls.from_text(text, adaptive=adaptive)
