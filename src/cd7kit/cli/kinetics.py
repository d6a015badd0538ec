"""``cd7kit kinetics``: non-compartmental analysis and model fits of CAR kinetics.

``cd7kit kinetics nca STUDY [--code CAR_COPIES|CAR_CELLS] [--json]`` -- PKNCA-convention NCA per subject and
infusion (engine :mod:`cd7kit.kinetics.nca`). ``cd7kit kinetics fit STUDY --model stein2019|kimmel2021|ck7
[--population] [--json]`` -- individual maximum-likelihood fits with the M3 BLQ likelihood, or a
population SAEM fit (:mod:`cd7kit.kinetics.fit`, :mod:`cd7kit.kinetics.saem`). STUDY is a CSV-template
folder or a stored study id.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
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


def _subject_data(st: Any, sid: str, code: str) -> pd.DataFrame:
    s = st.series(sid, code)
    s = s[s["specimen"].isna() | (s["specimen"] == "PB")]
    return s


def _ck7_context(st: Any, sid: str) -> dict[str, Any]:
    from cd7kit.kinetics.models import ck7

    inf = st.infusions(sid)
    prod = str(st.subject_row(sid).get("product") or "")
    params = ck7.CAR_NK if "NK" in prod.upper() else ck7.CAR_T
    doses = inf["dose"].fillna(0.0).to_numpy(float)
    units = inf["dose_unit"].fillna("").tolist()
    if any(u not in ("cells/kg", "") for u in units):
        raise InputError([Problem("CK7 needs infusion doses in cells/kg", "interventions", column="dose_unit", value=",".join(map(str, units)), expected="cells/kg")])
    return {"ck7_params": params, "dose_days": inf["start_day"].to_numpy(float) if len(inf) else np.array([0.0]), "doses_per_kg": doses if len(inf) else 1e6}


@kinetics_app.command("fit")
def fit_cmd(
    study: str = typer.Argument(..., help="CSV-template folder or stored study id."),
    model: str = typer.Option("stein2019", "--model", help="stein2019 | kimmel2021 | ck7"),
    population: bool = typer.Option(False, "--population", help="Population fit by SAEM (stein2019) instead of individual fits."),
    code: str | None = typer.Option(None, "--code", help=CODE_HELP + " (kimmel2021 / ck7 default: CAR_CELLS)"),
    subject: list[str] = typer.Option([], "--subject", help="Fit only these subjects (repeatable; individual fits)."),
    seed: int = typer.Option(1, "--seed", help="Seed of the SAEM run."),
    iterations: str = typer.Option("150,100", "--iterations", help="SAEM exploratory,smoothing iterations."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Fit a cellular-kinetic model to the CAR time courses (BLQ by the M3 likelihood)."""
    from cd7kit.kinetics.fit import fit_individual, get_model
    from cd7kit.kinetics.saem import saem

    m = get_model(model)
    st = open_study(study, db)
    obs = st.observations
    if code is None:
        prefer = ["CAR_COPIES", "CAR_CELLS"] if model == "stein2019" else ["CAR_CELLS", "CAR_COPIES"]
        code = next((c for c in prefer if (obs["code"] == c).any()), prefer[0])
    if model == "kimmel2021" and code != "CAR_CELLS":
        raise InputError([Problem("kimmel2021 is a model of CAR+ cells per uL", column="--code", value=code, expected="CAR_CELLS")])
    if population:
        if model != "stein2019":
            raise InputError([Problem("population SAEM is implemented for the analytic stein2019 model", column="--model", value=model, expected="stein2019")])
        try:
            nb, ns = (int(x) for x in iterations.split(","))
        except ValueError as exc:
            raise InputError([Problem("bad --iterations", column="--iterations", value=iterations, expected="two integers, e.g. 150,100")]) from exc
        rows = []
        for sid in st.subjects["subject_id"]:
            s = _subject_data(st, sid, code)
            inf = st.infusions(sid)
            t0 = float(inf["start_day"].min()) if len(inf) else 0.0
            t1 = float(inf["start_day"].iloc[1]) if len(inf) > 1 else np.inf
            s = s[(s["day"] > t0) & (s["day"] < t1)]  # first-dose interval; the Stein model has one dose
            rows.append(pd.DataFrame({"subject_id": sid, "time": s["day"] - t0, "value": s["value"], "blq": s["blq"], "lloq": s["lloq"]}))
        data = pd.concat(rows, ignore_index=True)
        if data["subject_id"].nunique() < 3:
            raise InputError([Problem("population fit needs CAR data from at least 3 subjects", column="--code", value=code)])
        res: Any = saem(data, "stein2019", n_burn=nb, n_smooth=ns, seed=seed)
        out: Any = res.to_dict()

        def render_pop(o: Any) -> None:
            t = Table(title=f"SAEM {model} ({o['value']['n_subjects']} subjects, {o['value']['n_obs']} obs, {o['value']['n_blq']} BLQ)")
            for c in ("parameter", "typical", "SE (transformed)", "omega^2"):
                t.add_column(c)
            for k, v in o["value"]["parameters"].items():
                t.add_row(k, _fmt(v["typical"], 4), _fmt(v["se_mu_transformed"]), _fmt(v["omega2"]))
            console.print(t)
            console.print(f"residual SD (ln scale): {o['value']['sigma_log']:.3f}")

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
        s = _subject_data(st, sid, code)
        if s.empty:
            continue
        inf = st.infusions(sid)
        ctx: dict[str, Any] = {}
        t0 = float(inf["start_day"].min()) if len(inf) else 0.0
        if model == "ck7":
            ctx = _ck7_context(st, sid)
            t = s["day"].to_numpy(float)
        else:
            t1 = float(inf["start_day"].iloc[1]) if len(inf) > 1 else np.inf
            s = s[(s["day"] >= t0) & (s["day"] < t1)]
            t = s["day"].to_numpy(float) - t0
        f = fit_individual(t, s["value"].to_numpy(float), s["blq"].to_numpy(bool), s["lloq"].to_numpy(float), model=model, context=ctx, subject_id=str(sid), fixed={"C0": 0.36} if model == "kimmel2021" else None)
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
