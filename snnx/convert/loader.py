"""Reading an ONNX model and pinning its input shape, with errors a user can act on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import shape_inference

from snnx.errors import ConversionError

#: Oldest default-domain opset the handlers are written against (Clip's bounds became inputs in 11).
MIN_OPSET = 11


@dataclass
class InputSpec:
    """The model's single data input.

    :param name: ONNX input name.
    :param shape: full shape with a concrete batch dimension.
    :param batch_fixed: the model itself fixes the batch size (no dynamic batch axis).
    """

    name: str
    shape: tuple[int, ...]
    batch_fixed: bool


def load_model(source: str | os.PathLike | onnx.ModelProto) -> onnx.ModelProto:
    """Load and check an ONNX model.

    :param source: a path or an already loaded ``ModelProto``.
    :raises ConversionError: the file is missing, not ONNX, truncated, invalid, or its opset is < 11.
    """
    if isinstance(source, onnx.ModelProto):
        model, where = source, "the ONNX model"
    else:
        path = Path(source)
        where = str(path)
        if not path.is_file():
            msg = f"no such file: {where!r}"
            raise ConversionError(msg)
        try:
            model = onnx.load(str(path), load_external_data=True)
        except Exception as exc:  # protobuf raises DecodeError and friends
            msg = (
                f"{where} is not a readable ONNX model ({type(exc).__name__}: {exc}); "
                "is it truncated, or not an .onnx file? Re-export it with torch.onnx.export"
            )
            raise ConversionError(msg) from exc
    # Arbitrary bytes sometimes parse as an (empty) protobuf message; a real model has both.
    if model.ir_version == 0 or not model.graph.node:
        msg = f"{where} is not an ONNX model (no IR version or no graph nodes); is the file truncated?"
        raise ConversionError(msg)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"{where} is not a valid ONNX model: {first}"
        raise ConversionError(msg) from exc
    opset = default_opset(model)
    if opset < MIN_OPSET:
        msg = (
            f"{where} uses opset {opset}; snnx convert needs opset {MIN_OPSET} or newer. Re-export with "
            f"torch.onnx.export(..., opset_version=17) or upgrade it with "
            f"onnx.version_converter.convert_version(model, 17)"
        )
        raise ConversionError(msg)
    return model


def default_opset(model: onnx.ModelProto) -> int:
    """The model's default-domain (``ai.onnx``) opset version, 0 when it imports none."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def data_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The graph inputs that are not initializers: the tensors the caller feeds."""
    initializers = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,3,224,224"`` (or with ``x``) → ``(1, 3, 224, 224)``."""
    parts = [p for p in text.replace("x", ",").replace(" ", "").split(",") if p]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError as exc:
        msg = f"--input-shape {text!r} is not a list of integers like 1,3,224,224"
        raise ConversionError(msg) from exc
    if not dims or min(dims) <= 0:
        msg = f"--input-shape {text!r} must list positive sizes, like 1,3,224,224"
        raise ConversionError(msg)
    return dims


def resolve_input(model: onnx.ModelProto, input_shape: tuple[int, ...] | None, batch: int) -> InputSpec:
    """The single data input with every dimension concrete.

    A symbolic batch dimension (axis 0) becomes ``batch``; any other symbolic dimension needs
    ``input_shape``. ``input_shape`` may include the batch dimension or leave it out.

    :raises ConversionError: several inputs, a dynamic non-batch dimension without ``input_shape``,
        or an ``input_shape`` that contradicts the model.
    """
    inputs = data_inputs(model)
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs) or "none"
        msg = f"the model has {len(inputs)} data inputs ({names}); snnx convert handles exactly one"
        raise ConversionError(msg)
    inp = inputs[0]
    dims = inp.type.tensor_type.shape.dim
    declared: list[int | str | None] = []
    for d in dims:
        if d.HasField("dim_value"):
            declared.append(int(d.dim_value))
        else:
            declared.append(d.dim_param or None)
    rank = len(declared)
    pretty = "(" + ", ".join("?" if d is None else str(d) for d in declared) + ")"
    if rank < 2:
        msg = f"input {inp.name!r} has shape {pretty}; expected (batch, features...)"
        raise ConversionError(msg)
    batch_fixed = isinstance(declared[0], int)
    if input_shape is not None:
        given = tuple(input_shape)
        if len(given) == rank - 1:
            given = (declared[0] if batch_fixed else batch, *given)
        if len(given) != rank:
            msg = f"--input-shape {given} has {len(given)} dimensions, input {inp.name!r} has {rank} {pretty}"
            raise ConversionError(msg)
        for axis, (want, got) in enumerate(zip(declared, given, strict=True)):
            if isinstance(want, int) and want != got and axis > 0:
                msg = f"--input-shape {given} contradicts input {inp.name!r} {pretty} at axis {axis}"
                raise ConversionError(msg)
        if batch_fixed and given[0] != declared[0]:
            msg = f"input {inp.name!r} has a fixed batch size {declared[0]}; --input-shape says {given[0]}"
            raise ConversionError(msg)
        if not batch_fixed:
            given = (batch, *given[1:])
        return InputSpec(inp.name, tuple(int(v) for v in given), batch_fixed)
    dynamic = [axis for axis, d in enumerate(declared) if not isinstance(d, int) and axis > 0]
    if dynamic:
        names = [str(d) if d else f"d{axis}" for axis, d in enumerate(declared)]
        example = ",".join(
            ["1", *(str(d) if isinstance(d, int) else names[a + 1] for a, d in enumerate(declared[1:]))]
        )
        unknown = " and ".join(names[a] for a in dynamic)
        msg = (
            f"input {inp.name!r} has dynamic shape {pretty} (axes {dynamic} are not fixed); "
            f"pass --input-shape {example} with {unknown} replaced by the sizes to convert for"
        )
        raise ConversionError(msg)
    first = declared[0] if batch_fixed else batch
    return InputSpec(inp.name, (int(first), *(int(d) for d in declared[1:])), batch_fixed)


def pin_input(model: onnx.ModelProto, spec: InputSpec) -> onnx.ModelProto:
    """A copy of ``model`` whose data input has the concrete shape of ``spec``, shapes inferred."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for inp in out.graph.input:
        if inp.name == spec.name:
            dims = inp.type.tensor_type.shape.dim
            for d, value in zip(dims, spec.shape, strict=True):
                d.Clear()
                d.dim_value = int(value)
    # Stale value_info from the exporter may carry symbolic sizes; inference recomputes them.
    del out.graph.value_info[:]
    return infer(out)


def infer(model: onnx.ModelProto) -> onnx.ModelProto:
    """Strict ONNX shape inference with data propagation; a failure is a :class:`ConversionError`."""
    try:
        return shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:
        msg = f"ONNX shape inference failed: {str(exc).strip().splitlines()[0]}"
        raise ConversionError(msg) from exc


def tensor_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Concrete shapes of every tensor shape inference could fully determine."""
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        dims = tt.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(int(d.dim_value) for d in dims)
    return shapes
