"""The spread between several `flashsnn bench` runs of one machine.

    python benchmarks/spread.py runs/*.json --out benchmarks/results/leaky-cpu-spread.md

The code lives in python/flashsnn/bench/spread.py, beside the runner.
"""

import sys

from flashsnn.bench.spread import main

if __name__ == "__main__":
    sys.exit(main())
