#!/usr/bin/env python3
"""Compare `kestrel run --json` results of the CUDA backend with the CPU backend's (standard
library only: the GPU machine has no pip). Usage: gpu_compare.py OUT_DIR [MODEL ...]; reads
OUT_DIR/MODEL.cpu.json and OUT_DIR/MODEL.cuda.json. Boxes must agree within 0.5 px, scores and
class probabilities within 1e-3, with the same number of results (and at least one). Prints a
latency table; exits 1 on any mismatch, naming it."""
import json
import sys

BOX_PX, SCORE = 0.5, 1e-3


def compare(cpu, cuda):
    """The largest difference and a list of problems."""
    problems, diffs = [], []
    if "classes" in cpu:
        a, b = cpu["classes"], cuda.get("classes", [])
        if not a or len(a) != len(b):
            problems.append(f"{len(a)} classes on the CPU, {len(b)} on CUDA")
        for x, y in zip(a, b):
            d = abs(x["score"] - y["score"])
            diffs.append(d)
            if x["index"] != y["index"] or d > SCORE:
                problems.append(f"class {x['index']} {x['score']:.6f} vs class {y['index']} {y['score']:.6f}")
    else:
        a, b = cpu.get("detections", []), cuda.get("detections", [])
        if not a or len(a) != len(b):
            problems.append(f"{len(a)} boxes on the CPU, {len(b)} on CUDA")
        for x, y in zip(a, b):
            box = max(abs(x[k] - y[k]) for k in ["x_min", "y_min", "x_max", "y_max"])
            d = abs(x["score"] - y["score"])
            diffs.append(max(d, box))
            if box > BOX_PX or d > SCORE:
                problems.append(f"box off by {box:.3f} px, score by {d:.2e}")
    return (max(diffs) if diffs else 0.0), problems


def main():
    out, models = sys.argv[1], sys.argv[2:] or ["blazeface", "fashion-cnn"]
    print(f"{'model':<12} {'cpu ms':>8} {'cuda ms':>8} {'speedup':>8} {'max |Δ|':>9}  result")
    ok = True
    for name in models:
        cpu = json.load(open(f"{out}/{name}.cpu.json"))
        cuda = json.load(open(f"{out}/{name}.cuda.json"))
        worst, problems = compare(cpu, cuda)
        ok = ok and not problems
        speedup = cpu["latency_ms"] / cuda["latency_ms"] if cuda["latency_ms"] > 0 else float("nan")
        verdict = "ok" if not problems else "MISMATCH: " + "; ".join(problems)
        print(f"{name:<12} {cpu['latency_ms']:>8.3f} {cuda['latency_ms']:>8.3f} {speedup:>7.2f}x {worst:>9.2e}  {verdict}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
