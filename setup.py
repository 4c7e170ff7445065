"""Build script: the package is declared in pyproject.toml; this file only adds the C++ extension.

`flaggems._C` (pybind11, no torch headers) is compiled from csrc/*.cpp: C++17, -O3, OpenMP when the
compiler has it (otherwise std::thread). No -march: AVX2 / AVX-512 code paths are compiled with
function target attributes and chosen at run time, so a wheel runs on any x86-64 (and the portable
path builds on other architectures).

A failed build does not fail the install: the error (compiler missing, compile error) is written to
flaggems/_C_build_error.txt and `flaggems.cpp` raises it, verbatim, at first use of a C++ kernel.
Set FLAGGEMS_REQUIRE_CPP=1 to make a failed build fatal instead, FLAGGEMS_NO_CPP=1 to skip it, and
FLAGGEMS_BUILD_JOBS to set the number of parallel compile jobs (default 2).
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
ERROR_FILE = "_C_build_error.txt"

ext_modules = []
cmdclass = {}
_sources = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "csrc", "*.cpp")))

if _sources and os.environ.get("FLAGGEMS_NO_CPP", "0") != "1":
    from pybind11.setup_helpers import ParallelCompile, Pybind11Extension

    ParallelCompile("FLAGGEMS_BUILD_JOBS", default=2).install()

    ext_modules.append(
        Pybind11Extension(
            "flaggems._C",
            _sources,
            include_dirs=[os.path.join(ROOT, "csrc")],
            depends=sorted(glob.glob(os.path.join(ROOT, "csrc", "*.h"))),
            cxx_std=17,
        )
    )

    def _compiler_accepts(compiler, flags, code="int main(){return 0;}\n", link=False):
        tmp = tempfile.mkdtemp(prefix="flaggems_flagtest_")
        try:
            src = os.path.join(tmp, "t.cpp")
            with open(src, "w") as f:
                f.write(code)
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=flags)
            if link:
                compiler.link_executable(objs, os.path.join(tmp, "t"), extra_postargs=flags)
            return True
        except Exception:
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _diagnostics(exc):
        """The compiler's own error output: re-run the failing command (only after a failure)."""
        seen = set()
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            cmd = getattr(exc, "cmd", None)
            if isinstance(cmd, (list, tuple)):
                try:
                    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=600)
                    lines = (r.stdout + r.stderr).strip().splitlines()
                    errs = [ln for ln in lines if "error" in ln.lower()]
                    return "\ncompiler output (first errors):\n" + "\n".join((errs or lines)[:40]) + "\n"
                except Exception as e2:  # the compiler itself cannot run
                    return f"\n(could not re-run the compiler: {e2!r})\n"
            exc = exc.__cause__ or exc.__context__
        return "\n" + traceback.format_exc()

    class BuildExt(build_ext):
        def _error_paths(self, ext):
            # beside the built module (goes into a wheel) and, for `pip install -e .`, in the source tree
            paths = [os.path.join(os.path.dirname(self.get_ext_fullpath(ext.name)), ERROR_FILE)]
            src = os.path.join(ROOT, "flaggems", ERROR_FILE)
            if (getattr(self, "editable_mode", False) or self.inplace) and src not in paths:
                paths.append(src)
            return paths

        def build_extensions(self):
            t0 = time.time()
            ext = self.extensions[0]
            err_paths = self._error_paths(ext)
            try:
                self._configure(ext)
                super().build_extensions()
            except Exception as e:  # compiler missing, compile or link error
                cc = (getattr(self.compiler, "compiler_so_cxx", None) or getattr(self.compiler, "compiler_so", None)
                      or getattr(self.compiler, "compiler", None))
                ccname = cc[0] if isinstance(cc, (list, tuple)) and cc else str(cc)
                missing = shutil.which(ccname) is None if ccname else True
                msg = (
                    f"flaggems._C failed to build with C++ compiler {ccname!r}"
                    + (" (not found on PATH: install g++ or clang++, e.g. `apt-get install g++`)" if missing else "")
                    + f".\n{type(e).__name__}: {e}\n" + _diagnostics(e)
                )
                if os.environ.get("FLAGGEMS_REQUIRE_CPP", "0") == "1":
                    raise
                for p in err_paths:
                    os.makedirs(os.path.dirname(p), exist_ok=True)
                    with open(p, "w") as f:
                        f.write(msg)
                print("WARNING: " + msg.splitlines()[0] + f" See {err_paths[-1]}.", file=sys.stderr)
                self.extensions = []  # nothing to copy / install; flaggems.cpp reports the error file
                return
            for p in err_paths:
                if os.path.exists(p):
                    os.remove(p)
            print(f"flaggems._C built in {time.time() - t0:.1f} s", file=sys.stderr)

        def _configure(self, ext):
            if self.compiler.compiler_type == "msvc":
                ext.extra_compile_args += ["/O2", "/openmp"]
                return
            c = self.compiler
            flags = ["-O3", "-fno-math-errno"]
            if _compiler_accepts(c, ["-fopenmp"], "#include <omp.h>\nint main(){return omp_get_max_threads();}\n",
                                 link=True):
                ext.extra_compile_args += flags + ["-fopenmp"]
                ext.extra_link_args += ["-fopenmp"]
                ext.define_macros.append(("FLAGGEMS_OPENMP", "1"))
            else:
                simd = ["-fopenmp-simd"] if _compiler_accepts(c, ["-fopenmp-simd"]) else []
                ext.extra_compile_args += flags + simd + ["-pthread"]
                ext.extra_link_args += ["-pthread"]

    cmdclass["build_ext"] = BuildExt

setup(ext_modules=ext_modules, cmdclass=cmdclass)
