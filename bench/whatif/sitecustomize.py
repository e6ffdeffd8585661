"""Applies ``whatif_patches`` named in ``BENCH_WHATIF`` when a hub process starts (bench only)."""

import os

if os.environ.get("BENCH_WHATIF"):
    import whatif_patches

    whatif_patches.apply(os.environ["BENCH_WHATIF"])
