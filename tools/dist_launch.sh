#!/usr/bin/env bash
# torchrun launcher behind dist_train.sh / dist_test.sh:
#   bash tools/dist_launch.sh NPROC_PER_NODE SCRIPT [script args]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT in the environment.
# Interpreter: PYTHON, else the active venv, else .venv (tools/python_env.sh).
# Without GPUs the processes run on the CPU with the gloo backend.
NPROC=$1
DIR=$(cd "$(dirname "$0")" && pwd)
source "$DIR/python_env.sh"
PYTHONPATH="$DIR/..":${PYTHONPATH:-} \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "${@:2}"
