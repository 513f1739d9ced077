"""evalkit: can this task move from the big model to the small one, and with what routing threshold?

Library entry points live in :mod:`evalkit.api`; the ``evalkit`` command is :mod:`evalkit.cli`.
"""

__version__ = "0.1.0"
