# Sourced by the shell launchers: sets PYTHON to the interpreter they run.
# Order: $PYTHON if set; else the active virtualenv's; else the repo's .venv
# (what `make` creates); else python3 / python from PATH.
_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${PYTHON:-}" ]; then
  if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
    PYTHON=$VIRTUAL_ENV/bin/python
  elif [ -x "$_repo/.venv/bin/python" ]; then
    PYTHON=$_repo/.venv/bin/python
  else
    PYTHON=$(command -v python3 || command -v python) || {
      echo "No Python found: set PYTHON=/path/to/python (the venv with slak_mm)" >&2
      exit 1
    }
  fi
fi
