"""Known mismatches: issue 13's findings and the new siblings the sweep found, so they do not fail the sweep
as *new* mismatches.

``13.<n>`` is issue 13's finding n; ``S<n>`` is a sibling the sweep found (``sibling_of`` names the finding
whose pattern it repeats, if any). Each entry matches (overload pattern, category, dtypes, label regex, why
regex) and carries one repro sample. tests/test_adversarial.py runs every repro as ``xfail(strict=True)``: when
a finding is fixed its repro passes, the xfail flips, and the entry must be removed here.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from .calls import Call

INTS = ("int8", "uint8", "int16", "int32", "int64")


@dataclass(frozen=True)
class Known:
    id: str                       # "13.1" = issue 13 finding 1; "S3" = a sibling the sweep found
    ops: Tuple[str, ...]          # fnmatch patterns over "base.overload"
    category: str                 # category name or "*"
    label: str = ".*"             # regex over the sample label
    dtypes: Tuple[str, ...] = ()  # empty = any
    why: str = ".*"               # regex over the verdict ("native raises ...", "exception class: ...")
    what: str = ""
    # one covered sample: (overload, category, dtype, label) of a generated one, or a Call (found by OpInfo)
    repro: Optional[Union[Tuple[str, str, str, str], Call]] = None
    sibling_of: str = ""


_ADD_SUB = ("add.*", "add_.*", "sub.*", "sub_.*", "rsub.*")
_BINARY_SCALAR = ("add.Scalar", "add_.Scalar", "sub.Scalar", "sub_.Scalar", "rsub.Scalar", "mul.Scalar",
                  "mul_.Scalar", "floor_divide.Scalar", "floor_divide_.Scalar", "bitwise_*.Scalar*",
                  "bitwise_*_.Scalar", "eq.Scalar*", "ne.Scalar*", "lt.Scalar*", "le.Scalar*", "gt.Scalar*",
                  "ge.Scalar*", "eq_.Scalar", "ne_.Scalar", "lt_.Scalar", "le_.Scalar", "gt_.Scalar", "ge_.Scalar")
_FILL_LIKE = ("full.default", "full_like.default", "new_full.default", "fill_.Scalar", "masked_fill.Scalar",
              "masked_fill_.Scalar", "constant_pad_nd.default", "scatter.value*", "scatter_.value*",
              "clamp_min.default", "clamp_min_.default", "clamp_max.default", "clamp_max_.default",
              "where.Scalar*", "pow.Tensor_Scalar*")
_NATIVE_RAISES = r"^native raises"
_CLASS = r"^exception class"
_GEMS_RAISES = r"^flaggems raises"

KNOWN: Tuple[Known, ...] = (
    # ---- issue 13's own findings, rediscovered
    Known("13.1", ("_softmax.*", "_log_softmax.*"), "dim", why=_NATIVE_RAISES,
          what="_softmax/_log_softmax compute over dim % ndim where torch raises IndexError",
          repro=("aten::_softmax.default", "dim", "float32", "dim=2 on a 2-d operand")),
    Known("13.2", ("add.*", "add_.*"), "scalar", r"^alpha=0\.5 \(float\)", INTS, _NATIVE_RAISES,
          what="integer add with a float alpha returns a value (torch: RuntimeError)",
          repro=("aten::add.Tensor", "scalar", "int32", "alpha=0.5 (float) for torch.int32")),
    Known("13.3", ("full.default", "new_full.default", "fill_.Scalar", "masked_fill.Scalar", "masked_fill_.Scalar"),
          "scalar", r"=300 overflows", ("int8",), _NATIVE_RAISES,
          what="an integer fill value that overflows the dtype wraps (300 -> 44 in int8)",
          repro=("aten::full.default", "scalar", "int8", "fill_value=300 overflows torch.int8")),
    Known("13.7", ("addmm.*", "addmv.*", "addbmm.*", "baddbmm.*"), "nonfinite", r"^(alpha|beta)=0 with NaN",
          what="alpha == 0 must ignore the product (and beta == 0 the bias), NaN included",
          repro=("aten::addmm.default", "nonfinite", "float32", "alpha=0 with NaN in mat1")),
    Known("13.13", ("_grouped_mm.default",), "*", dtypes=("int32",), why=r"InterpreterError|^native raises",
          what="_grouped_mm on int32 raises InterpreterError, or returns for an empty operand (torch: RuntimeError)",
          repro=("aten::_grouped_mm.default", "valid", "int32", "base call")),
    Known("13.15", ("full.default",), "scalar", r"^fill_value=nan", INTS, _CLASS,
          what="torch.full(..., nan, dtype=int) raises ValueError (torch: RuntimeError)",
          repro=("aten::full.default", "scalar", "int32", "fill_value=nan for torch.int32")),

    # ---- new siblings found by the sweep
    # (first match wins: the narrow entries come before the broad ones)
    Known("S10", ("sub.Scalar", "sub_.Scalar"), "scalar", dtypes=("bool",), why=_NATIVE_RAISES,
          what="sub on a bool tensor with a number returns a value; torch raises 'Subtraction ... with a bool "
               "tensor is not supported'",
          repro=("aten::sub.Scalar", "scalar", "bool", "other=2 overflows torch.bool")),
    Known("S1", _ADD_SUB + ("index_add*", "addmv*") + _FILL_LIKE, "scalar", r"overflows", why=_NATIVE_RAISES,
          sibling_of="13.3",
          what="a Python scalar that overflows the dtype is accepted (wraps, or becomes Inf in fp16): alpha/beta "
               "of add/sub/rsub/index_add/addmv, clamp_min/max bounds, fill values in full/full_like/new_full/"
               "fill_/masked_fill/constant_pad_nd/scatter(value) in fp16, pow's exponent, where's scalars",
          repro=("aten::sub.Tensor", "scalar", "int8", "alpha=300 overflows torch.int8")),
    Known("S2", ("sub.*", "sub_.*", "rsub.*") + ("add.*", "add_.*"), "scalar", r"^alpha=(0\.5 \(float\)|True)",
          why=_NATIVE_RAISES, sibling_of="13.2",
          what="sub/rsub take a float alpha on integer tensors, and every add/sub/rsub a bool alpha on floats "
               "(torch: RuntimeError)",
          repro=("aten::sub.Tensor", "scalar", "int32", "alpha=0.5 (float) for torch.int32")),
    Known("S3", _ADD_SUB + _FILL_LIKE, "scalar", r"(=nan for|=9223372036854775808 overflows)", why=_CLASS,
          sibling_of="13.15",
          what="a NaN scalar for an integer tensor (alpha, fill values) or a scalar past int64 raises ValueError "
               "from Python's int() (torch: RuntimeError)",
          repro=("aten::fill_.Scalar", "scalar", "int32", "value=nan for torch.int32")),
    Known("S4", _BINARY_SCALAR + ("isin.*", "constant_pad_nd.default"), "scalar", r"(overflows|=nan for)",
          why=_GEMS_RAISES,
          what="flaggems refuses scalars torch accepts: an `other` past int32/int64 in binary .Scalar ops "
               "(torch computes in the tensor's dtype), isin's out-of-range element (torch: False), a NaN pad value "
               "on bool (torch pads True)",
          repro=("aten::add.Scalar", "scalar", "int32", "other=2147483653 overflows torch.int32")),
    Known("S5", ("index_add*",), "empty", r"^M=0", why=_GEMS_RAISES, sibling_of="13.15",
          what="index_add into a 0-row self raises IndexError; torch returns the empty result",
          repro=("aten::index_add.default", "empty", "float32", "M=0")),
    Known("S6", ("embedding.default", "index_select.*"), "empty", r"^M=0", why=_CLASS, sibling_of="13.15",
          what="embedding/index_select on a 0-row table raise IndexError (torch: RuntimeError)",
          repro=("aten::index_select.default", "empty", "float32", "M=0")),
    Known("S7", ("constant_pad_nd.default",), "scalar", r"^value=0\.5", ("bool",), r"^result",
          what="constant_pad_nd on bool with value 0.5 pads False (torch pads True: nonzero is True)",
          repro=("aten::constant_pad_nd.default", "scalar", "bool", "value=0.5 (float) for torch.bool")),
    Known("S8", ("mm.out", "addmm.out", "addmv.out", "addbmm.out", "baddbmm.out", "gather.out", "index_select.out",
                 "nonzero.out", "sort.values*", "topk.values", "index_add.out"), "overlap",
          r"(expanded \(self-overlapping\)|partly overlaps)", why=_NATIVE_RAISES, sibling_of="13.8",
          what="out= that overlaps itself (expanded) or partly overlaps an input is written; torch raises "
               "'unsupported operation: ... refer to a single memory location'",
          repro=("aten::mm.out", "overlap", "float32", "out= expanded (self-overlapping)")),
    Known("S9", ("histc.default",), "nonfinite", r"^(min|max)=-?inf", why=_NATIVE_RAISES,
          what="histc with an infinite min/max returns counts; torch raises 'range of [...] is not finite'",
          repro=("aten::histc.default", "nonfinite", "float32", "min=-inf")),
    Known("S11", ("topk.default", "topk.values"), "valid", dtypes=("bool",), why=_NATIVE_RAISES,
          what="topk on bool returns a value; torch raises 'topk does not support bool dtypes'",
          repro=("aten::topk.default", "valid", "bool", "base call")),
    Known("S12", ("_grouped_mm.default",), "*", dtypes=("float32", "bfloat16", "float16"), why=_NATIVE_RAISES,
          sibling_of="13.13",
          what="_grouped_mm accepts operands torch's input validation rejects (N=0 or K=0, expanded or "
               "column-major/strided self: 'strides should be multiple of 16 bytes', …)",
          repro=("aten::_grouped_mm.default", "noncontig", "float32", "self column-major")),
    # ---- found by PyTorch's OpInfo inputs (python -m flaggems.testing.adversarial --categories opinfo)
    Known("S13", ("clamp.Tensor", "clamp.Tensor_out"), "opinfo_reference", dtypes=("bfloat16", "float16"),
          why=r"^result 0: dtype",
          what="clamp(0-dim int self, fp32 min, bf16 max) returns bf16; torch promotes the bounds to fp32",
          repro=Call("aten::clamp.Tensor", ("torch.tensor(2)", "rand((1, 4), torch.float32, seed=1)",
                                            "rand((3, 4), torch.bfloat16, seed=2)"))),
    Known("S14", ("amax.*", "amin.*", "aminmax.*"), "opinfo_error", why=_NATIVE_RAISES,
          what="amax/aminmax over a 65-dim tensor return a value; torch raises 'only tensors with up to 64 dims'",
          repro=Call("aten::amax.default", ("rand((1,) * 65, torch.float32, seed=1)", "[0]"))),
    Known("S15", ("clamp_min_.Tensor", "clamp_max_.Tensor"), "opinfo", why=_NATIVE_RAISES,
          what="in-place clamp_min_/clamp_max_ on an empty self whose broadcast with the bound is larger returns "
               "self; torch raises 'output with shape [0, 1, 3] doesn't match the broadcast shape [0, 10, 3]'",
          repro=Call("aten::clamp_max_.Tensor", ("rand((0, 1, 3), torch.float32, seed=1)",
                                                 "rand((0, 10, 3), torch.float32, seed=2)"))),
)


def match(result) -> Optional[str]:
    short = result.op.split("::", 1)[1]
    for k in KNOWN:
        if k.category not in ("*", result.category):
            continue
        if k.dtypes and result.dtype not in k.dtypes:
            continue
        if not any(fnmatch.fnmatchcase(short, p) for p in k.ops):
            continue
        if not re.search(k.label, result.label) or not re.search(k.why, result.why):
            continue
        return k.id
    return None
