"""The ten seed environments, one file each; importing this package registers them all."""

from importlib import import_module

SEED_MODULES = (
    "arithmetic_chain",
    "gcd_euclid",
    "sort_composite",
    "grid_paths",
    "graph_distance",
    "subset_sum",
    "graph_coloring",
    "sat_planted",
    "topo_order",
    "fraction_sum",
)

for _module in SEED_MODULES:
    import_module(f"{__name__}.{_module}")
