#!/usr/bin/env bash
# `kestrel watch` figures (outside CI; numbers belong in notes, not tests), side by side in one run:
#   1. a 640x480 test camera at 30 fps: BlazeFace full (cpu) and int8 (micro), 1 and 2 threads:
#      fps kept, capture-to-result latency p50/p99, stage p50s, pipeline overhead (latency p50
#      minus inference p50);
#   2. the same source as fast as it goes (--fps 300, dropping): the most each model sustains;
#   3. a soak: int8 on micro, the source at 300 fps (several times inference), SOAK_S seconds
#      (default 120, over 10,000 frames here): RSS every 10 s, drops, latency.
# Usage: bash scripts/bench-watch.sh [SECONDS_PER_RUN]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
soak=${SOAK_S:-120}
cargo build --release -q
k=target/release/kestrel
full=models/blazeface/model.onnx
int8=models/blazeface/model.int8.onnx

summary() {
    python3 -c '
import json, sys
label = sys.argv[1]
s = json.loads(sys.stdin.read().strip().splitlines()[-1])["stats"]
st, lat = s["stages_ms"], s["latency_ms"]
print("{:<40} {:6.1f} fps  latency p50 {:6.1f} p99 {:6.1f} ms  pre {:5.2f} infer {:5.2f} decode {:5.2f} ms  overhead {:5.2f} ms  dropped {}/{}".format(
    label, s["fps"], lat["p50"], lat["p99"], st["preprocess"]["p50"], st["infer"]["p50"], st["decode"]["p50"],
    lat["p50"] - st["infer"]["p50"], s["frames_dropped"], s["frames_captured"]))
' "$1"
}

echo "== 640x480 source; $secs s per run; $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
for fps in 30 300; do
    for threads in 1 2; do
        for model in "$full cpu" "$int8 micro"; do
            set -- $model
            $k watch "$1" test:// --fps "$fps" --json --duration "$secs" --backend "$2" --threads "$threads" 2>/dev/null \
                | summary "$(basename "$(dirname "$1")")/$(basename "$1") $2 ${threads}t @${fps}fps"
        done
    done
done

echo "== soak: $int8 on micro, test:// at 300 fps for $soak s"
$k watch "$int8" test:// --fps 300 --json --duration "$soak" --backend micro --stats-every 1000 > target/soak.jsonl 2>/dev/null &
pid=$!
for ((t = 10; t <= soak; t += 10)); do
    sleep 10
    kill -0 $pid 2>/dev/null || break
    echo "  t=${t}s RSS $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
done
wait $pid
summary "soak" < target/soak.jsonl
