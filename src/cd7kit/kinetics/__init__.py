"""Cellular kinetics of CAR-T / CAR-NK therapy: NCA (PKNCA conventions), mechanistic models, fits.

``nca``: non-compartmental metrics per infusion; ``models``: Stein 2019, Kimmel 2021, CK7 (ours);
``fit``: individual maximum likelihood with the M3 BLQ likelihood; ``saem``: population SAEM (all three
models; ``saem_study`` from a Study); ``mcmc``: the compiled likelihood and E-step; ``sse``: simulation and
re-estimation of the Stein model (the acceptance check); ``diagnostics``: GOF and VPC data; ``pl``: plotly
figures. See docs/kinetics.md and specs/kinetics.md.
"""

from .nca import NCAOptions, NCAResults, nca, nca_overview, nca_profile

__all__ = ["NCAOptions", "NCAResults", "nca", "nca_overview", "nca_profile"]
