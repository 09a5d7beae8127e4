"""Time one training step from a source checkout: the same as `flashsnn bench-train`.

    python benchmarks/train_step.py --out benchmarks/results/train-step-cpu.json
    python benchmarks/train_step.py --device gpu --out benchmarks/results/train-step-h200.json

The workloads and each library's network live in
python/flashsnn/bench/train_impls.py, the runner in train_step.py, so that an
installed flashsnn can run them too.
"""

import sys

from flashsnn.bench.train_step import main

if __name__ == "__main__":
    sys.exit(main())
