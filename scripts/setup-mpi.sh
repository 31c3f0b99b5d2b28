#!/usr/bin/env bash
# Makes MPI available for bp.distributed and its tests: Open MPI (`mpirun`, and `mpicc` plus the
# headers that building mpi4py needs) from Debian's openmpi-bin + libopenmpi-dev, and Python's
# headers (python3-dev) in case pip builds mpi4py from source. Installs only what is missing;
# mpi4py itself goes into the venv with the other Python packages (scripts/test.sh).
set -euo pipefail

need=()
command -v mpirun >/dev/null || need+=(openmpi-bin)
command -v mpicc >/dev/null || need+=(libopenmpi-dev)
# Open MPI 4's launcher refuses to start, even for ranks on this machine only, without ssh or rsh
command -v ssh >/dev/null || command -v rsh >/dev/null || need+=(openssh-client)
python3 -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || need+=(python3-dev)

if [[ ${#need[@]} -gt 0 ]]; then
    echo "MPI set-up: installing ${need[*]}"
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { echo "error: not root and no sudo; install ${need[*]}" >&2; exit 1; }
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
mpirun --version | head -n 1
