"""cd7kit: a clinical research toolkit for CD7-directed CAR-T and CAR-NK therapy in r/r T-ALL/LBL.

Layers (see DESIGN.md): ``vocab`` and ``data`` at the bottom; ``io`` and ``store`` turn outside data
into a :class:`~cd7kit.data.Study`; the engines (``clinical``, ``trial``, ``kinetics``, ``sim``,
``singlecell``) are pure computations over a Study; ``cli``, ``web`` and ``report`` only call them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cd7kit")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
