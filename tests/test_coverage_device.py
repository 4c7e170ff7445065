"""coverage.run / python -m flaggems: the --device choice and the per-step host-sync counts in the results."""
import json

import pytest

from flaggems import coverage
from flaggems.__main__ import _syncs_line, main


def test_device_must_belong_to_the_vendor(capsys):
    with pytest.raises(ValueError, match="FLAGGEMS_VENDOR=sim"):
        coverage.resolve_device("fgsim")
    with pytest.raises(SystemExit) as e:
        main(["demo", "--device", "fgsim"])
    assert e.value.code == 2
    assert "not served by the active vendor 'cpu'" in capsys.readouterr().err
    assert str(coverage.resolve_device(None)) == "cpu"


def test_run_reports_syncs_per_decode_step(tmp_path):
    steps = 3   # the smallest run with two decode steps: the interpreter makes every forward cost seconds
    res = coverage.run(model="llama-tiny", dtype="fp32", prompt_len=3, steps=steps)
    assert res.device == "cpu" and res.tokens_match
    # one segment per forward pass: the prefill, then steps - 1 decode steps (the last token needs no forward)
    assert len(res.syncs_per_decode_step) == steps - 1
    per = res.syncs.per_segment("flaggems")
    assert per[0] == res.syncs_prefill and per[1:steps] == res.syncs_per_decode_step
    assert sum(per) == res.syncs.flaggems()
    jpath, mpath = coverage.write(res, str(tmp_path))
    data = json.load(open(jpath))
    assert data["summary"]["syncs_per_decode_step"] == res.syncs_per_decode_step
    assert data["syncs"]["flaggems"] == res.syncs.flaggems()
    assert "Device->host reads" in open(mpath).read()
    line = _syncs_line(res)   # what demo / coverage print
    assert line.startswith(f"host syncs (flaggems): prefill {res.syncs_prefill}, per decode step ")
    assert all(site in line for site in list(res.syncs.by_site())[:3])
