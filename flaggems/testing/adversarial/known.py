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
    # ---- issue 13's own findings, rediscovered: all fixed (their regression tests live beside each fix)

    # ---- the parts of fixed findings' patterns that the full sweep still finds (their main cases are fixed)
    Known("S1", ("index_add*", "addmv*", "constant_pad_nd.*", "scatter.value*", "scatter_.value*", "where.Scalar*",
                 "div.Scalar*"),
          "scalar", r"overflows", why=_NATIVE_RAISES + "|^flaggems raises", sibling_of="13.3",
          what="a Python scalar that overflows the dtype is still accepted by index_add/addmv (alpha, beta), "
               "constant_pad_nd / scatter (value), where (scalar) and div (int64 divisor)",
          repro=("aten::constant_pad_nd.default", "scalar", "int8", "value=300 overflows torch.int8")),
    Known("S3", ("constant_pad_nd.*",), "scalar", r"=nan for", why=_CLASS + "|^flaggems raises",
          sibling_of="13.15",
          what="constant_pad_nd with a NaN value for an integer/bool self raises ValueError (torch: RuntimeError, "
               "or pads True for bool)",
          repro=("aten::constant_pad_nd.default", "scalar", "int32", "value=nan for torch.int32")),
    Known("13.7", ("baddbmm.*", "baddbmm_.*"), "nonfinite", r"^alpha=0 with NaN",
          what="baddbmm with alpha == 0 ignores the product (the BLAS rule flaggems follows everywhere); torch's CPU "
               "baddbmm propagates NaN from batch1/batch2 for small shapes and not for large ones",
          repro=("aten::baddbmm.default", "nonfinite", "float32", "alpha=0 with NaN in batch1")),
    # ---- new siblings found by the sweep
    # (first match wins: the narrow entries come before the broad ones)
    Known("S7", ("constant_pad_nd.default",), "scalar", r"^value=0\.5", ("bool",), r"^result",
          what="constant_pad_nd on bool with value 0.5 pads False (torch pads True: nonzero is True)",
          repro=("aten::constant_pad_nd.default", "scalar", "bool", "value=0.5 (float) for torch.bool")),
    Known("S8", ("mm.out", "addmm.out", "addmv.out", "addbmm.out", "baddbmm.out", "gather.out", "index_select.out",
                 "nonzero.out", "sort.values*", "topk.values", "index_add.out"), "overlap",
          r"(expanded \(self-overlapping\)|partly overlaps)", why=_NATIVE_RAISES, sibling_of="13.8",
          what="out= that overlaps itself (expanded) or partly overlaps an input is written; torch raises "
               "'unsupported operation: ... refer to a single memory location'",
          repro=("aten::mm.out", "overlap", "float32", "out= expanded (self-overlapping)")),
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
