"""Reports: plots of runs (PNG)."""
