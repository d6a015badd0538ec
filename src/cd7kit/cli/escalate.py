"""``cd7kit escalate``: dose-escalation boundaries, simulation, MTD selection, next dose and decision tables.

The JSON contract of these commands is fixed (issue 3, section 5; external scripts rely on it):
dose indices are 1-based and JSON goes to stdout. Every command calls the pure engine
:mod:`cd7kit.trial` and prints its result objects.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Column

from cd7kit.errors import InputError, Problem

from ._common import DB_OPTION, JSON_OPTION, console, emit, print_table

app = typer.Typer(help="Dose escalation: BOIN, 3+3, TITE-BOIN, CRM, BOIN12 -- boundaries, simulation, trial conduct.", no_args_is_help=True)

DESIGN_HELP = "Design: boin, 3+3, tite-boin, crm or boin12."

# options the designs share (one definition, one help text)
_TARGET = typer.Option(0.3, "--target", help="Target DLT rate.")
_COHORTSIZE = typer.Option(3, "--cohortsize", help="Cohort size.")
_CUTOFF_ELI = typer.Option(0.95, "--cutoff-eli", help="Elimination cutoff P(p > target | data).")
_EXTRASAFE = typer.Option(False, "--extrasafe", help="Add the stricter stopping boundary for the lowest dose.")
_OFFSET = typer.Option(0.05, "--offset", help="extrasafe offset.")
_N_EARLYSTOP = typer.Option(100, "--n-earlystop", help="Stop when this many patients are at the current dose.")
_P_SAF = typer.Option(None, "--p-saf", help="Highest rate deemed subtherapeutic (default 0.6 x target).")
_P_TOX = typer.Option(None, "--p-tox", help="Lowest rate deemed overly toxic (default 1.4 x target).")


def _floats(text: str | None, name: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise InputError([Problem("expected comma-separated numbers", column=name, value=text, expected="e.g. 0.05,0.15,0.3")]) from None


def _ints(text: str | None, name: str) -> list[int] | None:
    vals = _floats(text, name)
    if vals is None:
        return None
    if any(v != int(v) for v in vals):
        raise InputError([Problem("expected comma-separated whole numbers", column=name, value=text, expected="e.g. 3,6,3")])
    return [int(v) for v in vals]


def _right(header: str) -> Column:
    return Column(header, justify="right")


def _boin_opts(n_earlystop: int, p_saf: float | None, p_tox: float | None, cutoff_eli: float, extrasafe: bool, offset: float) -> dict[str, Any]:
    return {"n_earlystop": n_earlystop, "p_saf": p_saf, "p_tox": p_tox, "cutoff_eli": cutoff_eli, "extrasafe": extrasafe, "offset": offset}


# -- boundaries -------------------------------------------------------------------------------
@app.command("boundaries")
def boundaries_cmd(
    target: float = _TARGET,
    ncohort: int = typer.Option(10, "--ncohort", help="Number of cohorts."),
    cohortsize: int = _COHORTSIZE,
    cutoff_eli: float = _CUTOFF_ELI,
    extrasafe: bool = _EXTRASAFE,
    offset: float = _OFFSET,
    n_earlystop: int = _N_EARLYSTOP,
    p_saf: float | None = _P_SAF,
    p_tox: float | None = _P_TOX,
    as_json: bool = JSON_OPTION,
) -> None:
    """BOIN escalation / de-escalation / elimination boundaries for n = 1 ... ncohort x cohortsize (R get.boundary)."""
    from cd7kit.trial import boundaries

    b = boundaries(target, ncohort, cohortsize, n_earlystop, p_saf, p_tox, cutoff_eli, extrasafe, offset)
    emit(b, as_json, lambda obj: _render_boin_table(obj, full=True))


_BOIN_ROWS = (
    ("Escalate if # of DLT <=", "escalate_max"),
    ("De-escalate if # of DLT >=", "deescalate_min"),
    ("Eliminate if # of DLT >=", "eliminate_min"),
)


def _render_boin_table(b: Any, full: bool = False) -> None:
    rows = b.rows(full=full)
    console.print(f"BOIN, target {b.target}: lambda_e = {b.lambda_e:.4f}, lambda_d = {b.lambda_d:.4f}")
    lines = _BOIN_ROWS + ((("Stop the trial (lowest dose) if # of DLT >=", "stop_min"),) if b.extrasafe else ())
    print_table(
        None,
        ["Number of patients treated at the current dose", *(_right(str(r["n"])) for r in rows)],
        ([label, *("NA" if r.get(key) is None else str(r[key]) for r in rows)] for label, key in lines),
    )
    console.print(
        "Eliminated doses are never re-entered; if the lowest dose is eliminated the trial stops. "
        "De-escalation at the lowest dose and escalation into an eliminated dose mean: stay.",
        highlight=False,
    )


# -- simulate ---------------------------------------------------------------------------------
@app.command("simulate")
def simulate_cmd(
    design: str = typer.Option("boin", "--design", help=DESIGN_HELP),
    target: float = _TARGET,
    p_true: str = typer.Option(..., "--p-true", help="True DLT probabilities, comma-separated, dose 1 first."),
    ncohort: int = typer.Option(10, "--ncohort", help="Number of cohorts."),
    cohortsize: int = _COHORTSIZE,
    ntrial: int = typer.Option(1000, "--ntrial", help="Number of simulated trials."),
    seed: int = typer.Option(6, "--seed", help="Random seed (6 is R BOIN get.oc's default)."),
    rng: str = typer.Option("r", "--rng", help="'r': R's Mersenne-Twister stream (reproduces get.oc); 'numpy': the fast mode (PCG64; BOIN: one draw per cohort)."),
    n_earlystop: int = _N_EARLYSTOP,
    startdose: int = typer.Option(1, "--startdose"),
    titration: bool = typer.Option(False, "--titration"),
    extrasafe: bool = _EXTRASAFE,
    offset: float = _OFFSET,
    boundmtd: bool = typer.Option(False, "--boundmtd"),
    cutoff_eli: float = _CUTOFF_ELI,
    p_saf: float | None = _P_SAF,
    p_tox: float | None = _P_TOX,
    per_trial: bool = typer.Option(False, "--per-trial", help="Include one record per simulated trial."),
    method: str = typer.Option("exact", "--method", help="3+3 only: 'exact' (enumeration) or 'simulation'."),
    deescalate: bool = typer.Option(False, "--deescalate", help="3+3 only: the MTD needs 6 patients (de-escalation variant)."),
    skeleton: str | None = typer.Option(None, "--skeleton", help="CRM: prior DLT probabilities, comma-separated."),
    model: str = typer.Option("empiric", "--model", help="CRM: empiric or logistic."),
    no_restrict: bool = typer.Option(False, "--no-restrict", help="CRM: allow dose skipping."),
    window: float = typer.Option(28.0, "--window", help="TITE-BOIN: DLT assessment window (time units)."),
    accrual: float = typer.Option(10.0, "--accrual", help="TITE-BOIN: accrual rate (patients per time unit)."),
    estimator: str = typer.Option("ess", "--estimator", help="TITE-BOIN: 'ess' (Lin & Yuan 2020) or 'imputation' (Yuan et al. 2018)."),
    p_eff: str | None = typer.Option(None, "--p-eff", help="BOIN12: true efficacy probabilities, comma-separated."),
    phi_e: float = typer.Option(0.25, "--phi-e", help="BOIN12: lowest acceptable efficacy rate."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Operating characteristics by simulation (3+3: exact enumeration by default)."""
    from cd7kit.trial import get_design

    p = _floats(p_true, "p_true") or []
    if design == "boin":
        d = get_design("boin", target=target, ncohort=ncohort, cohortsize=cohortsize, startdose=startdose, titration=titration, boundmtd=boundmtd,
                       **_boin_opts(n_earlystop, p_saf, p_tox, cutoff_eli, extrasafe, offset))
        res: Any = d.simulate(p, ntrial=ntrial, seed=seed, rng=rng, per_trial=per_trial)
    elif design == "3+3":
        d = get_design("3+3", deescalate=deescalate, startdose=startdose)
        if method == "exact":
            res = d.exact_oc(p, target)
        elif method == "simulation":
            res = d.simulate(p, ntrial=ntrial, seed=seed, rng=rng, per_trial=per_trial, target=target)
        else:
            raise InputError([Problem("unknown method", column="method", value=method, expected="exact or simulation")])
    elif design == "crm":
        sk = _floats(skeleton, "skeleton")
        d = get_design("crm", target=target, ndose=len(p), skeleton=tuple(sk) if sk else None, model=model, restrict=not no_restrict,
                       ncohort=ncohort, cohortsize=cohortsize, startdose=startdose)
        res = d.simulate(p, ntrial=ntrial, seed=seed, rng=rng, per_trial=per_trial)
    elif design == "tite-boin":
        d = get_design("tite-boin", target=target, ncohort=ncohort, cohortsize=cohortsize, startdose=startdose, window=window, accrual=accrual,
                       estimator=estimator, n_earlystop=n_earlystop, cutoff_eli=cutoff_eli, p_saf=p_saf, p_tox=p_tox)
        res = d.simulate(p, ntrial=ntrial, seed=seed, rng=rng, per_trial=per_trial)
    elif design == "boin12":
        pe = _floats(p_eff, "p_eff")
        if not pe:
            raise InputError([Problem("BOIN12 needs --p-eff", column="p_eff")])
        d = get_design("boin12", target=target, phi_e=phi_e, ncohort=ncohort, cohortsize=cohortsize, startdose=startdose, n_earlystop=n_earlystop)
        res = d.simulate(p, pe, ntrial=ntrial, seed=seed, rng=rng, per_trial=per_trial)
    else:
        raise InputError([Problem("unknown design", column="design", value=design, expected="boin, 3+3, tite-boin, crm, boin12")])
    emit(res, as_json, _render_oc)


def _render_oc(res: Any) -> None:
    from cd7kit.data import jsonable

    d = jsonable(res)
    lines = [("true DLT rate", "p_true", ".2f")] if "p_true" in d else []
    lines += [("selection %", "selection_pct", ".1f"), ("patients (mean)", "patients_mean", ".2f"), ("DLTs (mean)", "dlt_mean", ".2f")]
    print_table(
        f"{d.get('design', '')} operating characteristics",
        ["", *(_right(f"dose {i + 1}") for i in range(len(d["selection_pct"])))],
        ([label, *(format(v, fmt) for v in d[key])] for label, key, fmt in lines),
    )
    console.print(
        f"no MTD (stop) {d['stop_pct']:.1f}%  mean n {d['n_mean']:.2f}  mean DLTs {d['dlt_total_mean']:.2f}  "
        f"overdose >60% {d['overdose60_pct']:.1f}%  >80% {d['overdose80_pct']:.1f}%"
        + (f"  duration {d['duration_mean']:.1f}" if d.get("duration_mean") is not None else ""),
        highlight=False,
    )


# -- select-mtd -------------------------------------------------------------------------------
@app.command("select-mtd")
def select_mtd_cmd(
    target: float = _TARGET,
    n: str = typer.Option(..., "--n", help="Patients per dose, comma-separated."),
    y: str = typer.Option(..., "--y", help="DLTs per dose, comma-separated."),
    design: str = typer.Option("boin", "--design", help=DESIGN_HELP),
    cutoff_eli: float = _CUTOFF_ELI,
    extrasafe: bool = _EXTRASAFE,
    offset: float = _OFFSET,
    boundmtd: bool = typer.Option(False, "--boundmtd"),
    p_tox: float | None = _P_TOX,
    efficacy: str | None = typer.Option(None, "--efficacy", help="BOIN12: responses per dose."),
    both: str | None = typer.Option(None, "--both", help="BOIN12: patients with both a DLT and a response, per dose."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The MTD from the final data (BOIN: isotonic estimates and 95% intervals, R select.mtd; BOIN12: the OBD)."""
    from cd7kit.trial import TrialData, get_design

    data = TrialData.of(_ints(n, "n") or [], _ints(y, "y") or [], efficacy=_ints(efficacy, "efficacy"), both=_ints(both, "both"))
    if design == "boin":
        d = get_design("boin", target=target, cutoff_eli=cutoff_eli, extrasafe=extrasafe, offset=offset, boundmtd=boundmtd, p_tox=p_tox)
    else:
        d = get_design(design, target=target, ndose=data.ndose)
    emit(d.select_mtd(data), as_json, _render_mtd)


def _render_mtd(m: Any) -> None:
    def row(i: int) -> list[str]:
        if m.phat[i] is None:
            return [str(i + 1), "----", "----", "----"]
        ci = "" if m.ci_lower[i] is None else f"({m.ci_lower[i]:.2f}, {m.ci_upper[i]:.2f})"
        po = "" if m.p_overdose[i] is None else f"{m.p_overdose[i]:.2f}"
        return [str(i + 1), f"{m.phat[i]:.2f}", ci, po]

    print_table(None, [_right(c) for c in ("dose", "isotonic estimate", "95% CI", "P(overdose)")], (row(i) for i in range(len(m.phat))))
    console.print(f"MTD: {'none' if m.mtd is None else 'dose ' + str(m.mtd)} -- {m.reason}", highlight=False)


# -- next ---------------------------------------------------------------------------------------
@app.command("next")
def next_cmd(
    design: str = typer.Option("boin", "--design", help=DESIGN_HELP),
    target: float = _TARGET,
    n: str | None = typer.Option(None, "--n", help="Patients per dose, comma-separated."),
    y: str | None = typer.Option(None, "--y", help="DLTs per dose, comma-separated."),
    current: int | None = typer.Option(None, "--current", help="Dose of the last cohort (1-based)."),
    study: str | None = typer.Option(None, "--study", help="A stored study id or a CSV-template folder (instead of --n/--y/--current)."),
    db: str | None = DB_OPTION,
    ncohort: int | None = typer.Option(None, "--ncohort", help="Number of cohorts (maximum sample size = ncohort x cohortsize)."),
    cohortsize: int = _COHORTSIZE,
    n_earlystop: int = _N_EARLYSTOP,
    cutoff_eli: float = _CUTOFF_ELI,
    extrasafe: bool = _EXTRASAFE,
    offset: float = _OFFSET,
    p_saf: float | None = _P_SAF,
    p_tox: float | None = _P_TOX,
    pending: str | None = typer.Option(None, "--pending", help="TITE-BOIN: follow-up of pending patients, ';' between doses, ',' within (e.g. '';'10,20')."),
    window: float = typer.Option(28.0, "--window", help="TITE-BOIN / study: DLT window in days."),
    skeleton: str | None = typer.Option(None, "--skeleton", help="CRM: prior DLT probabilities."),
    efficacy: str | None = typer.Option(None, "--efficacy", help="BOIN12: responses per dose, comma-separated."),
    both: str | None = typer.Option(None, "--both", help="BOIN12: patients with both a DLT and a response, per dose."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The dose for the next cohort, from counts (--n --y --current) or from a study's DLT events (--study)."""
    from cd7kit.trial import DltDefinition, TrialData, escalation_state, get_design

    opts: dict[str, Any] = {"target": target, "cohortsize": cohortsize}
    if ncohort is not None:
        opts["ncohort"] = ncohort
    if design in ("boin", "tite-boin"):
        opts.update(_boin_opts(n_earlystop, p_saf, p_tox, cutoff_eli, extrasafe, offset))
        if design == "tite-boin":
            opts["window"] = window
            for k in ("extrasafe", "offset"):
                opts.pop(k)
    if design == "crm" and skeleton:
        opts["skeleton"] = tuple(_floats(skeleton, "skeleton") or [])
    if study is not None:
        from ._common import open_study

        st = open_study(study, db)
        target_ = opts.pop("target")
        opts.pop("window", None)
        state = escalation_state(st, design=design, target=target_, dlt=DltDefinition(window_days=window), **opts)
        emit(state, as_json, render_state)
        return
    if n is None or y is None or current is None:
        raise InputError([Problem("give --n, --y and --current, or --study", column=c) for c, v in (("n", n), ("y", y), ("current", current)) if v is None])
    nn = _ints(n, "n") or []
    pend = None
    if pending is not None:
        pend = [[float(v) for v in part.split(",") if v.strip()] for part in pending.split(";")]
    data = TrialData.of(nn, _ints(y, "y") or [], current, pend, efficacy=_ints(efficacy, "efficacy"), both=_ints(both, "both"))
    if "ncohort" not in opts:
        opts["ncohort"] = 1000  # no maximum sample size unless given
    d = get_design(design, ndose=len(nn), **opts)
    emit(d.next_dose(data), as_json, _render_decision)


def _render_decision(dec: Any) -> None:
    if dec.value is None:
        console.print(f"[bold]{dec.action}[/]: stop the trial", highlight=False)
    else:
        console.print(f"[bold]{dec.action}[/]: next cohort at dose {dec.value}", highlight=False)
    console.print(dec.reason, highlight=False)
    if dec.eliminated:
        console.print(f"eliminated doses: {', '.join(map(str, dec.eliminated))}", highlight=False)
    if dec.mtd is not None:
        _render_mtd(dec.mtd)


def render_state(state: Any) -> None:
    """Print an :class:`~cd7kit.trial.EscalationState` (per-dose table, recommendation, missing follow-up); used by ``cd7kit demo``."""
    print_table(
        f"Escalation state of {state.study_id} ({state.design}, target {state.target})",
        ("dose", "level", "n", "DLT", "pending", "subjects with DLT"),
        ((str(d.dose), d.label or "", str(d.n), str(d.dlt), str(d.pending), ", ".join(d.dlt_subjects)) for d in state.doses),
    )
    if state.recommendation is not None:
        _render_decision(state.recommendation)
    for m in state.missing:
        console.print(f"[yellow]missing:[/] {m}", highlight=False)


# -- table ------------------------------------------------------------------------------------
@app.command("table")
def table_cmd(
    design: str = typer.Option("boin", "--design", help="boin, tite-boin, 3+3 or boin12."),
    target: float = _TARGET,
    ncohort: int = typer.Option(10, "--ncohort"),
    cohortsize: int = _COHORTSIZE,
    full: bool = typer.Option(False, "--full", help="BOIN: every n, not only multiples of the cohort size."),
    n_earlystop: int = _N_EARLYSTOP,
    cutoff_eli: float = _CUTOFF_ELI,
    extrasafe: bool = _EXTRASAFE,
    offset: float = _OFFSET,
    p_saf: float | None = _P_SAF,
    p_tox: float | None = _P_TOX,
    deescalate: bool = typer.Option(False, "--deescalate", help="3+3: the MTD needs 6 patients."),
    window: float = typer.Option(28.0, "--window", help="TITE-BOIN: DLT window."),
    phi_e: float = typer.Option(0.25, "--phi-e", help="BOIN12: lowest acceptable efficacy rate."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The decision table of a design, as a protocol prints it."""
    from cd7kit.trial import boundaries, get_design

    if design == "boin":
        b = boundaries(target, ncohort, cohortsize, n_earlystop, p_saf, p_tox, cutoff_eli, extrasafe, offset)
        if as_json:
            d = b.to_dict()
            d["table"] = b.rows(full=full)
            emit(d, True)
        else:
            _render_boin_table(b, full=full)
    elif design == "3+3":
        tpt = get_design("3+3", deescalate=deescalate)
        rows = tpt.decision_table()
        if as_json:
            emit({"design": "3+3", "table": rows, "rule": tpt.rule}, True)
        else:
            print_table("3+3 design", ("patients at the dose", "DLTs", "decision"), ((str(r["n"]), r["dlt"], r["action"]) for r in rows))
    elif design == "tite-boin":
        tite = get_design("tite-boin", target=target, ncohort=ncohort, cohortsize=cohortsize, window=window, n_earlystop=n_earlystop,
                          cutoff_eli=cutoff_eli, p_saf=p_saf, p_tox=p_tox)
        tab = tite.decision_table()
        if as_json:
            emit(tab, True)
        else:
            _render_tite_table(tab, tite)
    elif design == "boin12":
        b12 = get_design("boin12", target=target, phi_e=phi_e, ncohort=ncohort, cohortsize=cohortsize)
        rows = b12.decision_table(full=full)
        if as_json:
            emit({"design": "boin12", "u_b": b12.u_b, "table": rows, "rule": b12.rule}, True)
        else:
            _render_rds_table(rows, b12)
    else:
        raise InputError([Problem("no decision table for this design", column="design", value=design, expected="boin, tite-boin, 3+3, boin12")])


def _render_rds_table(rows: list[dict[str, Any]], design: Any) -> None:
    """Lin et al. 2020 Table 3 layout: one block per n, DLTs down, responses across; E = not admissible."""
    console.print(f"BOIN12 rank-based desirability scores (phi_T {design.target}, phi_E {design.phi_e}, u_b {design.u_b:.1f}); "
                  "E = eliminated (not admissible)", highlight=False)
    for n in sorted({r["n"] for r in rows}):
        rds = {(r["dlt"], r["response"]): r["rds"] for r in rows if r["n"] == n}
        print_table(
            f"n = {n}",
            ["# DLT \\ # responses", *(_right(str(e)) for e in range(n + 1))],
            ([str(dlt), *("E" if rds[dlt, e] is None else f"{rds[dlt, e]:g}" for e in range(n + 1))] for dlt in range(n + 1)),
        )


def _render_tite_table(tab: dict[str, Any], tite: Any) -> None:
    def opt(v: Any, fmt: str = "") -> str:
        return "" if v is None else format(v, fmt)

    print_table(
        f"TITE-BOIN ({tite.estimator}), target {tite.target}, window {tite.window}",
        ("n", "# DLT", "# pending", "decision", "escalate if STFT >=", "de-escalate if STFT <="),
        ((str(r["n"]), str(r["y"]), opt(r["pending"]), r["decision"], opt(r.get("escalate_if_stft_ge"), ".3f"), opt(r.get("deescalate_if_stft_le"), ".3f")) for r in tab["table"]),
    )
    console.print("STFT = total follow-up of the pending patients, in windows. Suspend = wait until fewer than half are pending.", highlight=False)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="escalate")
