"""``cd7kit kinetics``: non-compartmental analysis and model fits of CAR kinetics.

``cd7kit kinetics nca STUDY [--code CAR_COPIES|CAR_CELLS] [--json]`` -- PKNCA-convention NCA per subject and
infusion (engine :mod:`cd7kit.kinetics.nca`). ``cd7kit kinetics fit STUDY --model stein2019|kimmel2021|ck7
[--population] [--json]`` -- individual maximum-likelihood fits with the M3 BLQ likelihood, or a
population SAEM fit with standard errors for any of the three models (:mod:`cd7kit.kinetics.fit`,
:func:`cd7kit.kinetics.saem.saem_study`; the ODE models fit their identifiable parameters, the rest fixed). STUDY is a CSV-template
folder or a stored study id.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import typer
from rich.table import Table

from cd7kit.errors import InputError, Problem

from ._common import DB_HELP, JSON_HELP, console, emit, open_study

kinetics_app = typer.Typer(help="CAR cellular kinetics: NCA (PKNCA conventions) and mechanistic model fits.", no_args_is_help=True)

CODE_HELP = "CAR_COPIES (qPCR, copies/ug) or CAR_CELLS (flow, cells/uL); default: CAR_COPIES if present."


def _fmt(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "NA"
    if isinstance(x, float):
        return f"{x:.{nd}g}"
    return str(x)


@kinetics_app.command("nca")
def nca_cmd(
    study: str = typer.Argument(..., help="CSV-template folder or stored study id."),
    code: str | None = typer.Option(None, "--code", help=CODE_HELP),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Cmax, Tmax, AUC0-28d/84d, Clast, Tlast, half-lives and persistence per subject and infusion."""
    from cd7kit.kinetics.nca import CAR_CODES, nca

    if code is not None and code not in CAR_CODES:
        raise InputError([Problem("unknown CAR code", column="--code", value=code, expected=" | ".join(CAR_CODES))])
    st = open_study(study, db)
    res = nca(st, code)

    def render(r: Any) -> None:
        tab = r.to_frame()
        t = Table(title=f"NCA ({tab['code'].iloc[0] if len(tab) else code}; PKNCA conventions: lin-up/log-down, BLQ first=keep middle=drop last=keep)")
        for c in ("subject", "dose", "day", "Cmax", "Tmax d", "AUC0-28d", "AUC0-84d", "Tlast d", "t1/2 contraction d", "unit"):
            t.add_column(c)
        for _, row in tab.iterrows():
            t.add_row(
                str(row.subject_id), str(row.dose_index), _fmt(row.dose_day), _fmt(row.cmax), _fmt(row.tmax), _fmt(row.auc0_28), _fmt(row.auc0_84), _fmt(row.tlast), _fmt(row.contraction_half_life), f"{row.unit}; AUC {row.auc_unit}"
            )
        console.print(t)

    emit(res, as_json, render)


@kinetics_app.command("fit")
def fit_cmd(
    study: str = typer.Argument(..., help="CSV-template folder or stored study id."),
    model: str = typer.Option("stein2019", "--model", help="stein2019 | kimmel2021 | ck7"),
    population: bool = typer.Option(False, "--population", help="Population fit by SAEM instead of individual fits."),
    code: str | None = typer.Option(None, "--code", help=CODE_HELP + " (kimmel2021 / ck7 default: CAR_CELLS)"),
    subject: list[str] = typer.Option([], "--subject", help="Fit only these subjects (repeatable; individual fits)."),
    seed: int = typer.Option(1, "--seed", help="Seed of the SAEM run."),
    iterations: str = typer.Option("150,100", "--iterations", help="SAEM exploratory,smoothing iterations."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Fit a cellular-kinetic model to the CAR time courses (BLQ by the M3 likelihood)."""
    from cd7kit.kinetics.fit import default_code, fit_individual, get_model, study_context, subject_samples
    from cd7kit.kinetics.saem import saem_study

    m = get_model(model)
    st = open_study(study, db)
    code = code or default_code(st, model)
    if model == "kimmel2021" and code != "CAR_CELLS":
        raise InputError([Problem("kimmel2021 is a model of CAR+ cells per uL", column="--code", value=code, expected="CAR_CELLS")])
    if population:
        try:
            nb, ns = (int(x) for x in iterations.split(","))
        except ValueError as exc:
            raise InputError([Problem("bad --iterations", column="--iterations", value=iterations, expected="two integers, e.g. 150,100")]) from exc
        out: Any = saem_study(st, model, code, n_burn=nb, n_smooth=ns, seed=seed).to_dict()

        def render_pop(o: Any) -> None:
            v = o["value"]
            t = Table(title=f"SAEM {model} on {v['code']} ({v['n_subjects']} subjects, {v['n_obs']} obs, {v['n_blq']} BLQ)")
            for c in ("parameter", "typical", "SE (transformed)", "omega^2", "SE omega^2"):
                t.add_column(c)
            for k, p in v["parameters"].items():
                t.add_row(k, _fmt(p["typical"], 4) + (" (fixed)" if p["fixed"] else ""), _fmt(p["se_mu_transformed"]), _fmt(p["omega2"]), _fmt(p["se_omega2"]))
            console.print(t)
            console.print(f"residual SD (ln scale): {v['sigma_log']:.3f}")
            for note in o["missing"]:
                console.print(f"[yellow]{note}[/yellow]")

        emit(out, as_json, render_pop)
        return
    fits = []
    known = set(st.subjects["subject_id"])
    bad = [x for x in subject if x not in known]
    if bad:
        raise InputError([Problem("no such subject", column="--subject", value=b, expected="a subject_id of the study") for b in bad])
    for sid in st.subjects["subject_id"]:
        if subject and sid not in subject:
            continue
        s = subject_samples(st, str(sid), model, code)
        if s.empty:
            continue
        ctx = study_context(st, str(sid), model)
        f = fit_individual(
            s["time"], s["value"], s["blq"], s["lloq"], model=model, context=ctx, subject_id=str(sid), fixed=dict(m.saem_fixed) if model == "kimmel2021" else None
        )
        fits.append(f.to_dict())
    result = {"name": f"fit:{model}", "value": fits, "rule": {"system": "maximum likelihood, M3 for BLQ", "version": "cd7kit 1", "options": {"code": code}, "source": m.source}, "evidence": [], "missing": [] if fits else [f"no {code} data"]}

    def render(o: Any) -> None:
        t = Table(title=f"Individual fits: {model} on {code}")
        t.add_column("subject")
        for p in m.param_names:
            t.add_column(p)
        t.add_column("sigma")
        t.add_column("n (BLQ)")
        for f_ in o["value"]:
            v = f_["value"]
            t.add_row(f_["subject_id"], *[_fmt(v["params"][p]) for p in m.param_names], _fmt(v["sigma_log"]), f"{v['n_obs']} ({v['n_blq']})")
        console.print(t)

    emit(result, as_json, render)


def register(app: typer.Typer) -> None:
    app.add_typer(kinetics_app, name="kinetics")
