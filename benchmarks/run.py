"""Run the benchmark suite from a source checkout: the same as `flashsnn bench`.

    python benchmarks/run.py --device cpu --out benchmarks/results/leaky-cpu.json

The registry (families, shapes, implementations) and the runner live in
python/flashsnn/bench/ so that an installed flashsnn can run them too.
"""

import sys

from flashsnn.bench.runner import main

if __name__ == "__main__":
    sys.exit(main())
