#!/usr/bin/env bash
# Create (if missing) and fill a virtual environment for slak_mm.
#   bash tools/setup_env.sh [VENV]            (default: .venv)
# Environment: PYTHON (interpreter for the venv, default python3),
#   TORCH_SPEC (default "torch==2.14.1 torchvision==0.29.1"),
#   SLAK_MM_WHEELS (folder with a prebuilt onedl-mmcv wheel; default
#   ../shared/wheels beside the repo), MMCV_VERSION (default 2.3.6).
# Idempotent: steps already done are skipped, so re-running is cheap.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=${1:-.venv}
# Absolute, because the mmcv source build below runs from inside the sdist.
case $VENV in /*) ;; *) VENV=$PWD/$VENV ;; esac
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
WHEELS=${SLAK_MM_WHEELS:-$REPO/../shared/wheels}
MMCV_VERSION=${MMCV_VERSION:-2.3.6}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

"$PY" -c 'import torchvision' 2>/dev/null || {
  echo "[setup_env] installing $TORCH_SPEC"
  pip_install --upgrade pip setuptools wheel
  # shellcheck disable=SC2086
  pip_install $TORCH_SPEC
}

# mmcv's own dependencies first (as its wheel metadata lists them), so that
# its ops can be checked on import whichever way it is installed.
"$PY" -c 'import mmengine, cv2, yapf, addict' 2>/dev/null ||
  pip_install "onedl-mmengine>=0.10.12" opencv-python addict yapf packaging pyyaml Pillow

mmcv_ok() { "$PY" -c 'import mmcv, mmcv.ops; from mmcv.ops import nms, RoIAlign' 2>/dev/null; }
if ! mmcv_ok; then
  # 1) a prebuilt wheel (the project's CI cache), kept only if its compiled
  #    ops import against this torch (they are built for one torch version).
  for whl in "$WHEELS"/onedl_mmcv-"$MMCV_VERSION"-*.whl; do
    [ -f "$whl" ] || continue
    echo "[setup_env] trying prebuilt $whl"
    pip_install --no-deps "$whl" && mmcv_ok && break
    "$PY" -m pip uninstall -y -q onedl-mmcv || true
  done
fi
if ! mmcv_ok; then
  # 2) build from the PyPI source package. Its setup.py asks for C++17;
  #    torch >= 2.14 headers need C++20.
  echo "[setup_env] building onedl-mmcv $MMCV_VERSION from source (~15 min on 2 cores)"
  build=$(mktemp -d)
  "$PY" -m pip download -q --no-deps --no-binary :all: -d "$build" "onedl-mmcv==$MMCV_VERSION"
  tar -xzf "$build"/onedl_mmcv-*.tar.gz -C "$build"
  src=$(find "$build" -mindepth 1 -maxdepth 1 -type d | head -n 1)
  if "$PY" -c 'import sys, torch; v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); sys.exit(v < (2, 14))'; then
    sed -i 's/-std=c++1[47]/-std=c++20/g' "$src/setup.py"
  fi
  pip_install ninja psutil
  (cd "$src" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "$PY" -m pip install --disable-pip-version-check -q --no-build-isolation --no-deps .)
  rm -rf "$build"
  mmcv_ok || { echo "[setup_env] onedl-mmcv ops do not import after the build" >&2; exit 1; }
fi

# The package itself (editable) with its remaining dependencies and tests.
pip_install -e "$REPO[tests]"
"$PY" -c 'import slak_mm, mmdet, mmseg, timm; print("[setup_env] ready:", slak_mm.__version__)'
