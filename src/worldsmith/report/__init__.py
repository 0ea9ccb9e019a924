"""Reports: plots of runs (PNG) and the self-contained HTML page of a run folder (`worldsmith report`)."""
