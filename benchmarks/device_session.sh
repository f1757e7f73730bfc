#!/usr/bin/env bash
# One call of an accelerator loan: `python -m benchmarks --plan device`, as is
# and, on a GPU, again with XLA's on-device conditionals (CUDA graphs that
# record conditionals), each bounded in time. Run from the repository root:
#
#     bash benchmarks/device_session.sh [SECONDS_PER_RUN]
#
# (default 270 s each). The JSON files and logs go to $OUT when it is set (the
# folder the device tool brings back), else to benchmarks/results/. A run
# writes its JSON after every group, so one stopped by its limit still leaves
# the groups it finished (marked "complete": false). Copy the JSON files into
# benchmarks/results/ and commit them; `python -m benchmarks.report FILE`
# prints their tables.
set -u
limit=${1:-270}
out=${OUT:-benchmarks/results}
python=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$out"
backend=$("$python" -c "import jax; print(jax.default_backend())") || exit 1
echo "backend: $backend; $("$python" -c "import jax; print(jax.devices()[0].device_kind)")"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv
status=0
timeout "$limit" "$python" -m benchmarks --plan device \
    --out "$out/$backend-device.json" > "$out/$backend-device.log" 2>&1 || status=$?
tail -n 40 "$out/$backend-device.log"
if [ "$backend" = gpu ]; then
    XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_enable_command_buffer=+CONDITIONAL" \
        timeout "$limit" "$python" -m benchmarks --plan device \
        --out "$out/$backend-device-conditional-graphs.json" \
        > "$out/$backend-device-conditional-graphs.log" 2>&1 || status=$?
    tail -n 40 "$out/$backend-device-conditional-graphs.log"
fi
exit "$status"
