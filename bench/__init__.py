"""Crossdock benchmarks, each measured against a raw baseline in the same run.

    python -m bench            # everything, full sizes (under 10 minutes on 2 cores)
    python -m bench --quick    # everything at tiny sizes (what CI runs)

See bench/README.md for what each benchmark measures and docs/benchmarks.md for figures.
"""
