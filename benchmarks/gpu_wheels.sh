#!/usr/bin/env bash
# The Python packages that the project's GPU machine lacks, as wheels for its Python (CPython 3.12,
# manylinux x86-64), in .whl/ (git-ignored). They travel with the working tree to that machine,
# which reaches no package index; gpu_session.sh installs them there with
# `pip install --no-index --no-deps --target DIR` and puts DIR on PYTHONPATH.
#
#   bash benchmarks/gpu_wheels.sh            # download them (needs PyPI), then check them
#   bash benchmarks/gpu_wheels.sh --check    # check the wheels already in .whl/
#
# The check, on this machine (any CPU): install the wheels alone into an empty folder as the GPU
# machine will, put it first on PYTHONPATH, import snn_lib's modules, and require that each wheel's
# package is imported from that folder and that every other third-party module snn_lib imports is
# one the GPU machine's image holds (GPU_IMAGE below: its package list as read on 2026-11-17).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DIR=${WHEELS:-.whl}

# pinned to the versions the project is tested with; tonic imports importRosbag and h5py (the image
# has h5py), hydra needs omegaconf and antlr4 4.9.*, which PyPI has only as a source archive: it is
# built here (pure Python, so the wheel fits any platform)
# built here (pure Python, so the wheel fits any platform). The peers that train_speed.py --peers
# compares with (the .[peers] extra): SpikingJelly, and Norse (a source archive too) with what it needs.
BINARY="snntorch==1.0.0 tonic==1.7.0 importRosbag==1.0.4 omegaconf==2.3.1 hydra-core==1.3.8 spikingjelly==2.0.0
        nir==1.0.8 nirtorch==2.6 loguru==0.7.3"
SOURCE_ONLY="antlr4-python3-runtime==4.9.3 norse==1.1.0"
MODULES="snntorch tonic importRosbag omegaconf hydra antlr4"
PEER_MODULES="spikingjelly norse nir nirtorch loguru"      # checked to import from the wheels; what they
                                                          # import besides is theirs (optional packages)

if [ "${1:-}" != "--check" ]; then
    mkdir -p "$DIR"
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$DIR" $BINARY
    "$PY" -m pip wheel -q --no-deps --no-binary=:all: -w "$DIR" $SOURCE_ONLY
fi
compgen -G "$DIR/*.whl" >/dev/null || { echo "gpu_wheels.sh: no wheels in $DIR; run it without --check" >&2; exit 1; }
count=$(ls "$DIR"/*.whl | wc -l)
[ "$count" -eq 11 ] || { echo "gpu_wheels.sh: $DIR holds $count wheels, expected 11 (one version of each)" >&2; exit 1; }

site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$DIR"/*.whl
PEER_MODULES="$PEER_MODULES" PYTHONPATH="$site:$PWD" "$PY" - "$site" $MODULES <<'EOF'
import importlib
import os
import sys

site, wheel_modules = sys.argv[1], sys.argv[2:]
peer_modules = os.environ["PEER_MODULES"].split()
GPU_IMAGE = {                         # top-level modules of packages the GPU machine's image holds
    "torch", "torchgen", "numpy", "scipy", "matplotlib", "mpl_toolkits", "h5py", "tqdm", "yaml", "PIL",
    "packaging", "typing_extensions", "cycler", "dateutil", "fontTools", "kiwisolver", "pyparsing",
    "threadpoolctl", "attr", "certifi", "charset_normalizer", "idna", "requests", "urllib3", "six",
    "_distutils_hack", "setuptools", "pkg_resources", "sympy", "mpmath", "networkx", "jinja2",
    "markupsafe", "filelock", "fsspec", "triton", "psutil", "markdown_it", "mdurl", "pandas",
}
for name in ("snn_lib.train", "snn_lib.cli", "snn_lib.evaluate", "snn_lib.report", "snn_lib.plotting"):
    importlib.import_module(name)
problems = []
for name in wheel_modules:
    where = getattr(importlib.import_module(name), "__file__", "") or ""
    if not where.startswith(site):
        problems.append(f"{name} was imported from {where}, not from the wheels")
    print(f"{name:13s} {getattr(sys.modules[name], '__version__', '')}  {where}")
for name, module in list(sys.modules.items()):
    where = getattr(module, "__file__", None) or ""
    top = name.split(".")[0]
    if "site-packages" in where and top not in GPU_IMAGE and not top.startswith("_") and top not in wheel_modules \
            and not where.startswith(site) and top != "snn_lib":
        problems.append(f"{name} ({where}) is neither in the wheels nor on the GPU machine's image")
for name in peer_modules:                    # after the strict check: the peers' optional imports are theirs
    where = getattr(importlib.import_module(name), "__file__", "") or ""
    if not where.startswith(site):
        problems.append(f"{name} was imported from {where}, not from the wheels")
if problems:
    sys.exit("gpu_wheels.sh: " + "; ".join(sorted(set(problems))[:10]))
print(f"gpu_wheels.sh: the {len(wheel_modules) + len(peer_modules)} packages import from the wheels alone; snn_lib "
      "needs nothing else that the GPU machine's image lacks")
EOF
du -ch "$DIR"/*.whl | tail -n 1
