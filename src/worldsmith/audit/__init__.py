"""audit: red-teaming environment scorers, and loophole games with exploit-rate metrics.

- ``redteam``: a battery of exploit strategies run against any environment's ``grade``
  (``worldsmith audit env``).
- ``games``: the four vulnerability games of specs/judges-memory-audit-cso.md §2, each with a
  secure twin, and their ITP / ER metrics (``worldsmith audit game``).

Importing this package stays light (no torch): the red-team child process imports it.
"""
