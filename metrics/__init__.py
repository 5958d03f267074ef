"""One home for the numbers: binary and multiclass metrics, the patient vote, grouped k-fold
(``scores``), and the figures people look at (``figures``). A leaf: it imports nothing of the project,
so train, datasets, evaluate and release all measure the same way.

The rule for an absent class, everywhere: a recall that cannot be measured (its class has no tile)
is None, and so is a balanced accuracy that would need it; nothing is averaged over what is missing.
"""
