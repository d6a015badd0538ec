"""Virtual patients: CD7 CAR-T / CAR-NK therapy simulated with the CK7 model, written as a Study.

``simulate_cohort(design, n, seed)`` -> a validated :class:`~cd7kit.data.Study`; ``simulate_arrays`` is
the vectorised core; ``trial`` gives the escalation engine per-dose DLT outcomes from virtual patients;
``distributed`` runs many virtual trials on dask.distributed.
"""

from .cohort import DESIGNS, Design, simulate_arrays, simulate_cohort

__all__ = ["DESIGNS", "Design", "simulate_arrays", "simulate_cohort"]
