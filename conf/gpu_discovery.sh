#!/usr/bin/env bash
# Spark's GPU discovery script (spark.executor.resource.gpu.discoveryScript, spark.worker.resource.gpu.discoveryScript):
# prints the GPUs this machine has as Spark's ResourceInformation JSON, e.g. {"name": "gpu", "addresses": ["0", "1"]}.
# When CUDA_VISIBLE_DEVICES is set, CUDA numbers the devices it lists from 0: so do the addresses.
set -euo pipefail
if [[ -n "${CUDA_VISIBLE_DEVICES:-}" ]]; then
  indices=$(tr ',' '\n' <<<"$CUDA_VISIBLE_DEVICES" | sed '/^[[:space:]]*$/d' | awk '{print NR - 1}')
else
  indices=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null || true)
fi
addresses=$(sed -e '/^[[:space:]]*$/d' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e 's/.*/"&"/' <<<"$indices" | paste -sd, -)
echo "{\"name\": \"gpu\", \"addresses\": [${addresses}]}"
