"""examples/vendor_plugin: the out-of-tree package installs, is found through the ``flaggems.vendors`` entry point,
selected by its own detect(), reads its packaged tuned configs, and its explicit Override serves aten::silu."""
import os
import shutil
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "vendor_plugin")

CHECK = textwrap.dedent('''
    import json, torch, flaggems
    from acme_flaggems import kernels
    v = flaggems.vendor()
    x = torch.randn(3000)
    xd = x.double()
    xb = x.bfloat16()
    yd_native = torch.nn.functional.silu(xd)
    with flaggems.use_gems():
        patched = flaggems.registered_ops()
        with flaggems.record() as rep:
            y = torch.nn.functional.silu(x)       # fp32: Acme's override
            yb = torch.nn.functional.silu(xb)     # bf16: flaggems' generic kernel
            yd = torch.nn.functional.silu(xd)     # fp64: Acme has no fp64 -> native
    print(json.dumps({
        "vendor": v.name, "key": v.dispatch_key, "verified": v.hardware_verified,
        "overrides": v.info()["overrides"], "block": v.configs()["acme_silu"][0]["BLOCK"],
        "override_calls": kernels.CALLS["silu"], "served": rep.served_by("silu"),
        "fallback": rep.fallbacks().get("aten::silu.default"),
        "sort_patched": any(o.startswith("aten::sort.") for o in patched),
        "err": (y.double() - torch.nn.functional.silu(xd)).abs().max().item(),
        "err_bf16": (yb.double() - torch.nn.functional.silu(xd)).abs().max().item(),
        "exact_fp64": torch.equal(yd, yd_native),
    }))
''')


def test_example_plugin_installs_and_serves_its_override(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(EXAMPLE, src)  # build in a copy: the repo tree stays clean
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", "-t", str(target), str(src)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert list(target.glob("flaggems_acme-*.dist-info")), sorted(p.name for p in target.iterdir())
    env = dict(os.environ)
    env.pop("FLAGGEMS_VENDOR", None)
    env.pop("TRITON_INTERPRET", None)
    env["ACME_SIMULATE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(target), ROOT, env.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    import json

    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["vendor"] == "acme" and out["key"] == "CPU" and out["verified"] is False
    assert out["overrides"] == ["aten::silu.default"]
    assert out["block"] == 2048                     # packaged tuned config
    assert out["override_calls"] == 1               # the fp32 call went to Acme's kernel, and only that one
    assert out["served"] == {"triton": 2}           # fp32 (override) + bf16 (generic)
    # fp64 went native (the first candidate's reason is reported: the fp32-only override's dtype)
    assert sum(out["fallback"].values()) == 1, out["fallback"]
    assert out["sort_patched"] is False             # Acme's deny list
    assert out["err"] < 1e-5 and out["err_bf16"] < 2e-2 and out["exact_fp64"] is True

    # without the environment the plugin does not detect its device: the built-in detection decides
    env.pop("ACME_SIMULATE")
    r = subprocess.run([sys.executable, "-c", "import flaggems; print(flaggems.vendor().name)"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "cpu"
