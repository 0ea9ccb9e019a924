"""Locas parametric memory: a side FFN a model writes at test time and can merge into its weights.

``locas`` (attach / detach / merge, initialisations), ``ttt`` (test-time training over a long
document, TempLoRA baseline), ``book`` (the generated long-context benchmark), ``experiment``
(backbone, recall, methods x seeds), ``cli`` (`worldsmith memory ...`). See docs/memory.md.
"""
