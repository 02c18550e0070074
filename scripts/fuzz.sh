#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer) of Kestrel's parsers and decoders, on the stable toolchain.
#   scripts/fuzz.sh build                 build every target
#   scripts/fuzz.sh run TARGET SECONDS    fuzz one target for SECONDS from its corpus
#   scripts/fuzz.sh ci [SECONDS]          build, replay the regressions, fuzz each target SECONDS
#                                         (default 30, one target per core at a time); any crash,
#                                         timeout or OOM fails
#   scripts/fuzz.sh campaign SECONDS [JOBS]
#                                         every target for SECONDS, JOBS at a time (default: cores),
#                                         then minimize each corpus; a table of runs, coverage, crashes
#   scripts/fuzz.sh campaign-until CPU_SECONDS [JOBS]
#                                         run each target in rounds (≤ 20 min each) until the ledger
#                                         holds CPU_SECONDS for it; the most owed first
# See fuzz/README.md. Inputs that crash are kept in target/fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(onnx_load kmodel_run kmodel_export configs image_preprocess camera_frame ros2_image decoders bundle_open release_json link_packets)
TRIPLE=x86_64-unknown-linux-gnu
OUT=target/fuzz
BIN="$OUT/$TRIPLE/release"
# cargo-fuzz's flags, by hand: SanitizerCoverage (stable -C options), AddressSanitizer (nightly
# -Z, hence RUSTC_BOOTSTRAP), debug assertions and overflow checks on. `--target` keeps build
# scripts and proc macros uninstrumented.
RUSTFLAGS_FUZZ="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks \
-Cforce-frame-pointers=yes -Zsanitizer=address"
# Per input: 1 s, 512 MB; inputs up to 128 KiB (the seed models fit). ASan's quarantine of freed
# memory (256 MB by default) would count against the 512 MB: 16 MB is enough to catch use after free.
# The timeout is wall-clock: a campaign run at low priority beside other work sets FUZZ_TIMEOUT
# higher (a starved process is not a hang) and re-runs any timeout alone at 1 s.
LIBFUZZER_LIMITS=(-timeout="${FUZZ_TIMEOUT:-1}" -rss_limit_mb=512 -malloc_limit_mb=512 -max_len=131072)
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=16}

build() {
    RUSTC_BOOTSTRAP=1 RUSTFLAGS="$RUSTFLAGS_FUZZ" cargo build --release --manifest-path fuzz/Cargo.toml \
        --target "$TRIPLE" --target-dir "$OUT" --bins
}

# The working corpus of a target: its committed inputs (fuzz/corpus, fuzz/regressions) and seeds
# from the repository's own models, configs and images (small ones only), then what runs found.
corpus() {
    local t=$1 dir="$OUT/corpus/$1"
    mkdir -p "$dir"
    for d in "fuzz/corpus/$t" "fuzz/regressions/$t"; do
        [ -d "$d" ] && cp -n "$d"/* "$dir"/ 2>/dev/null || true
    done
    # Files of folder $1 under 128 KiB whose names match the glob $2.
    small() { find "$1" -maxdepth 1 -type f -size -128k -name "$2"; }
    case $t in
        onnx_load) for f in $(small models/fashion-cnn '*.onnx') $(small tests/hostile '*.onnx'); do
            cp -n "$f" "$dir/seed-$(basename "$(dirname "$f")")-$(basename "$f")"; done ;;
        kmodel_export) for f in $(small models/fashion-cnn '*.int8.onnx'); do cp -n "$f" "$dir/seed-$(basename "$f")"; done ;;
        kmodel_run) # 1 = reseal the CRC (see the target)
            { printf '\001'; cat boards/mps2-an386/data/fashion.kmodel; } > "$dir/seed-fashion.kmodel" ;;
        configs)
            for f in models/*/kestrel.toml; do { printf '\000'; cat "$f"; } > "$dir/seed-model-$(basename "$(dirname "$f")").toml"; done
            for f in boards/*.toml; do { printf '\001'; cat "$f"; } > "$dir/seed-board-$(basename "$f")"; done ;;
        camera_frame) # 4x2 pixels, rows 16 bytes apart
            { printf '\004\000\002\020\000'; head -c 32 /dev/zero | tr '\0' '\177'; } > "$dir/seed-4x2-stride16" ;;
        image_preprocess) for f in $(small models/fashion-cnn/samples '*.png') $(small models/samples '*.png') $(small models/samples '*.jpg'); do
            cp -n "$f" "$dir/seed-$(basename "$f")"; done ;;
    esac
    echo "$dir"
}

# The campaign ledger, committed so that the CPU time spent survives the machine it was spent on:
# a line per round (date, target, CPU seconds, executions, coverage and features, findings).
LEDGER=fuzz/campaigns.tsv

# CPU seconds the campaign ledger holds for target $1.
ledger_cpu() {
    awk -F'\t' -v t="$1" '$2 == t {s += $3} END {printf "%d", s}' "$LEDGER" 2>/dev/null || echo 0
}

ledger_totals() {
    echo "CPU seconds per target, all campaigns ($LEDGER):"
    awk -F'\t' '{cpu[$2] += $3} END {for (t in cpu) printf "  %-18s %6.0f s\n", t, cpu[t]}' "$LEDGER" | sort
}

# Fuzzes target $1 for $2 seconds; extra arguments go to libFuzzer. Fails on any finding.
fuzz() {
    local t=$1 secs=$2; shift 2
    local dir artifacts="$OUT/artifacts/$t/"
    dir=$(corpus "$t")
    mkdir -p "$artifacts"
    if ! "$BIN/$t" "$dir" "${LIBFUZZER_LIMITS[@]}" -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="$artifacts" "$@" 2> "$OUT/$t.log"; then
        tail -n 60 "$OUT/$t.log"
        echo "FUZZ FINDING in $t: reproduce with $BIN/$t $(ls -t "$artifacts" | head -n 1 | sed "s|^|$artifacts|")"
        echo "add the input to fuzz/regressions/$t/ (replayed by tests/fuzz_regressions.rs), then fix the cause"
        return 1
    fi
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+[[:space:]]+DONE' "$OUT/$t.log" | tr '\n' ' '
    echo " [$t]"
}

case "${1:-}" in
    build) build ;;
    run) build && fuzz "$2" "$3" "${@:4}" ;;
    ci)
        build
        secs=${2:-30}
        for t in "${TARGETS[@]}"; do
            if [ -d "fuzz/regressions/$t" ]; then
                "$BIN/$t" "${LIBFUZZER_LIMITS[@]}" -runs=0 "fuzz/regressions/$t" 2> "$OUT/$t.replay.log" \
                    || { tail -n 40 "$OUT/$t.replay.log"; echo "a regression input of $t fails again"; exit 1; }
            fi
        done
        # One target per core at a time: each still gets its SECONDS.
        printf '%s\n' "${TARGETS[@]}" | xargs -P "$(nproc)" -I{} bash scripts/fuzz.sh fuzz-one {} "$secs" ;;
    fuzz-one) fuzz "$2" "$3" ;;
    campaign)
        build
        secs=$2 jobs=${3:-$(nproc)}
        printf '%s\n' "${TARGETS[@]}" | xargs -P "$jobs" -I{} bash scripts/fuzz.sh campaign-one {} "$secs"
        ledger_totals ;;
    campaign-until)
        build
        goal=$2 jobs=${3:-$(nproc)}
        for t in "${TARGETS[@]}"; do echo "$(( goal - $(ledger_cpu "$t") )) $t"; done | sort -rn | awk '$1 > 0 {print $2}' \
            | xargs -r -P "$jobs" -I{} bash scripts/fuzz.sh campaign-rounds {} "$goal"
        ledger_totals ;;
    campaign-rounds) # TARGET GOAL: campaign-one rounds until the ledger holds GOAL CPU seconds
        t=$2 goal=$3
        while owed=$(( goal - $(ledger_cpu "$t") )); [ "$owed" -gt 0 ]; do
            bash scripts/fuzz.sh campaign-one "$t" $(( owed < 1200 ? (owed < 60 ? 60 : owed) : 1200 ))
            # libFuzzer's slow-unit-* reports (over 10 s) are not failures: a starved run writes them.
            ! ls "$OUT/artifacts/$t" | grep -qv '^slow-unit-' || { echo "stopping $t: a finding is in $OUT/artifacts/$t"; break; }
        done ;;
    campaign-one) # TARGET SECONDS: one target of a campaign, its corpus minimized after, one line
        t=$2 secs=$3
        mkdir -p "$OUT/artifacts/$t"
        dir=$(corpus "$t")
        /usr/bin/time -f '%U %S' -o "$OUT/$t.time" "$BIN/$t" "$dir" "${LIBFUZZER_LIMITS[@]}" \
            -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$t/" \
            > "$OUT/$t.campaign.log" 2>&1 || echo "FINDING in $t: see $OUT/$t.campaign.log"
        min="$OUT/corpus/$t.min"
        rm -rf "$min" && mkdir -p "$min"
        "$BIN/$t" -merge=1 "${LIBFUZZER_LIMITS[@]}" -artifact_prefix="$OUT/artifacts/$t/" "$min" "$dir" > "$OUT/$t.merge.log" 2>&1
        rm -rf "$dir" && mv "$min" "$dir"
        cpu=$(tail -n 1 "$OUT/$t.time" | awk '{print $1 + $2}')
        runs=$(grep -oP '^stat::number_of_executed_units: \K[0-9]+' "$OUT/$t.campaign.log" || echo 0)
        cov=$(grep -oP 'cov: [0-9]+ ft: [0-9]+' "$OUT/$t.campaign.log" | tail -n 1 || true)
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$cpu" "$runs" "$cov" \
            "$(ls "$OUT/artifacts/$t" | grep -cv '^slow-unit-')" | tee -a "$LEDGER" ;;
    corpus-dir) corpus "$2" ;;
    *) sed -n '2,9p' "$0"; exit 2 ;;
esac
