"""The ten seed environments, one file each; importing this package registers them all."""

from importlib import import_module

SEED_MODULES = (
    "arithmetic_chain",
)

for _module in SEED_MODULES:
    import_module(f"{__name__}.{_module}")
