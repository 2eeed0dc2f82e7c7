#!/usr/bin/env bash
# Distributed training: bash tools/dist_train.sh CONFIG GPUS [train.py args]
# (multi-node settings: see dist_launch.sh)
DIR=$(cd "$(dirname "$0")" && pwd)
exec bash "$DIR/dist_launch.sh" "$2" "$DIR/train.py" "$1" --launcher pytorch "${@:3}"
