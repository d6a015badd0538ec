"""Screening, CAR kinetics and signed dose-escalation decisions in the web app: pages, HTMX fragments, JSON API.

Every value shown comes from an engine, and every write goes through the store's audited annotation
service:

* **Screening** (``/screening``, ``/screening/{subject}``): each checkpoint's criterion results with their
  evidence rows (:mod:`cd7kit.clinical.eligibility`; the attestations and overrides it is given are the
  study's own ``meta`` records followed by the store's annotations, as for ``cd7kit screen``). Coordinators
  and investigators attest judgement criteria; investigators override a computed result, with a
  mandatory reason. The forms post with HTMX and the server returns the re-evaluated criterion row and
  checkpoint verdict.
* **Kinetics** (``/kinetics``): the spaghetti plot by dose level
  (:func:`cd7kit.report.figures.kinetics_spaghetti`) and the NCA table (:func:`cd7kit.kinetics.nca.nca`,
  summarised by :func:`cd7kit.kinetics.nca.nca_summary` per dose level).
* **Escalation** (``/escalation``): the engine's recommendation and its evidence (the same
  :func:`cd7kit.report.overview.study_overview` as the overview), and the investigator's decision,
  signed electronically (21 CFR 11.50/11.70/11.200: the password is re-entered; the store records the
  printed name, UTC time and meaning with the hash of the signed content). A refused signature is
  audited (``signature.refused``) and counts toward the login rate limit.

The JSON API beside the pages: ``GET /api/screening``, ``GET /api/screening/{subject_id}``, ``POST
/api/screening/{subject_id}/attestations`` and ``/overrides``, ``GET|POST /api/escalation/decisions``,
``GET /api/kinetics/nca``, ``GET /api/csrf``. API writes need the session's CSRF token in the
``X-CSRF-Token`` header. Statisticians get no identifying field (:data:`~.security.IDENTIFYING_COLUMNS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Form, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from cd7kit.clinical.eligibility import (
    CHECKPOINTS,
    CriteriaSet,
    Criterion,
    EligibilityReport,
    load_criteria,
    screening_log,
)
from cd7kit.clinical.eligibility.log import log_frame
from cd7kit.clinical.eligibility.records import (
    ATTESTATION_KIND,
    OVERRIDE_KIND,
    attestation_annotation,
    override_annotation,
    study_records,
)
from cd7kit.data import Study, jsonable
from cd7kit.errors import Cd7kitError, InputError, Problem
from cd7kit.report.overview import StudyOverview, study_overview, trial_subject_ids
from cd7kit.store import Store
from cd7kit.store.service import AuthorizationError

from .security import IDENTIFYING_COLUMNS, LoginLimiter, Session, allowed, csrf_ok

#: Annotation kind of a signed dose-escalation decision.
ESCALATION_KIND = "escalation_decision"
#: The meaning every escalation-decision signature carries (21 CFR 11.50(a)(3)).
SIGNATURE_MEANING = "I approve this dose-escalation decision"
#: What an investigator may decide (the engine's own actions, :class:`cd7kit.trial.base.Decision`).
DECISIONS = ("escalate", "stay", "de-escalate", "stop")
ROWS_PER_PAGE = 50
CAR_KINETIC_CODES = ("CAR_COPIES", "CAR_CELLS")


def screening_records(store: Store, study_id: str, study: Study) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """Attestations and overrides for the eligibility engine: the study's own, then the store's (later ones
    win), and a stamp that changes whenever a stored one is added (a cache key beside the study version)."""
    att_ann = store.annotations(study_id, kind=ATTESTATION_KIND)
    ovr_ann = store.annotations(study_id, kind=OVERRIDE_KIND)
    att, ovr = study_records(study, att_ann, ovr_ann)
    stamp = f"{max((a['id'] for a in att_ann + ovr_ann), default=0)}.{len(att_ann)}.{len(ovr_ann)}"
    return att, ovr, stamp


@dataclass(frozen=True)
class WebContext:
    """What the workflow routes share with :func:`cd7kit.web.app.create_app` (its closures and services)."""

    store: Store
    study_id: str
    studies: Any  # cd7kit.web.app.StudyCache: .get() -> Study, .result(name, compute) -> cached value
    templates: Jinja2Templates
    render: Callable[..., HTMLResponse]
    page_user: Callable[[Request], Session]
    api_user: Callable[[Request], Session]
    need: Callable[[Session, str], None]
    limiter: LoginLimiter


# -- request bodies of the JSON API -----------------------------------------------------------------
class AttestationIn(BaseModel):
    criterion_id: str = Field(description="Criterion id, e.g. I6")
    checkpoint: Literal["screening", "pre-lymphodepletion", "pre-infusion"] = "screening"
    value: bool = Field(description="true: the statement holds (e.g. consent given); false: it does not")
    reason: str | None = Field(default=None, description="Basis of the attestation (required to correct an earlier one)")


class OverrideIn(BaseModel):
    criterion_id: str = Field(description="Criterion id, e.g. I10")
    checkpoint: Literal["screening", "pre-lymphodepletion", "pre-infusion"] = "screening"
    result: Literal["MET", "NOT_MET", "UNKNOWN"]
    reason: str = Field(description="Why the computed result is overridden (kept in the audit trail)")


class DecisionIn(BaseModel):
    decision: Literal["escalate", "stay", "de-escalate", "stop"]
    dose_level: int | None = Field(default=None, description="Dose level of the next cohort (for stop: the selected MTD, or none)")
    comment: str = Field(description="The investigator's rationale (kept as the reason in the audit trail)")
    password: str = Field(description="The signer's password, re-entered (21 CFR 11.200)")


# -- helpers ------------------------------------------------------------------------------------------
def scrub(obj: Any) -> Any:
    """A copy without identifying fields: keys in IDENTIFYING_COLUMNS, and evidence rows about them."""
    if isinstance(obj, dict):
        return {k: scrub(v) for k, v in obj.items() if k not in IDENTIFYING_COLUMNS}
    if isinstance(obj, list):
        return [scrub(v) for v in obj if not (isinstance(v, dict) and v.get("what") in IDENTIFYING_COLUMNS)]
    return obj


def attestable(criterion: Criterion) -> bool:
    """Whether an attestation can decide (part of) the criterion: no expression, or one using ``attested()``."""
    return criterion.is_attestation or "attested(" in (criterion.expression or "")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _message(exc: Exception) -> str:
    if isinstance(exc, InputError):
        return "; ".join(str(p) for p in exc.problems)
    return str(exc)


def _pages(n: int, number: int) -> tuple[int, int]:
    n_pages = max(1, math.ceil(n / ROWS_PER_PAGE))
    return min(max(1, number), n_pages), n_pages


def register_workflows(app: FastAPI, ctx: WebContext) -> None:
    """Add the screening, kinetics and escalation pages, fragments and API routes to ``app``."""
    store, study_id, studies = ctx.store, ctx.study_id, ctx.studies
    page_user, api_user = ctx.page_user, ctx.api_user

    def shown(s: Session, obj: Any) -> Any:
        return obj if allowed(s.role, "view_identifying") else scrub(obj)

    def page(request: Request, name: str, s: Session, status_code: int = 200, **kw: Any) -> HTMLResponse:
        resp = ctx.render(request, name, s, **kw)
        resp.status_code = status_code
        return resp

    def fragment(request: Request, name: str, s: Session, status_code: int = 200, **kw: Any) -> HTMLResponse:
        html = ctx.templates.get_template(name).render(request=request, user=s, study_id=study_id, **kw)
        return HTMLResponse(html, status_code=status_code)

    def check_csrf(s: Session, given: str | None) -> None:
        if not csrf_ok(s.csrf, given):
            raise HTTPException(status_code=403, detail="invalid CSRF token")

    # ---------------------------------------------------------------------------------------------
    # screening
    # ---------------------------------------------------------------------------------------------
    def criteria_of(study: Study) -> CriteriaSet:
        trial = study.meta.get("trial")
        if not trial:
            raise HTTPException(status_code=404, detail=f"study {study_id!r} names no trial (meta 'trial'), so it has no eligibility criteria")
        cs: CriteriaSet = studies.result("screening:criteria", lambda st: load_criteria(str(trial)))
        return cs

    def records(study: Study) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
        return screening_records(store, study_id, study)

    def known_subject(study: Study, subject_id: str) -> None:
        if subject_id not in study.subject_ids:
            raise HTTPException(status_code=404, detail=f"no subject {subject_id!r}")

    def subject_reports(study: Study, cs: CriteriaSet, subject_id: str) -> list[EligibilityReport]:
        att, ovr, _ = records(study)
        return screening_log(study, cs, att, ovr, subject_ids=[subject_id])

    def log_page(study: Study, cs: CriteriaSet, number: int) -> dict[str, Any]:
        ids = trial_subject_ids(study)
        number, n_pages = _pages(len(ids), number)
        page_ids = ids[(number - 1) * ROWS_PER_PAGE : number * ROWS_PER_PAGE]
        att, ovr, stamp = records(study)

        def build(st: Study) -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = jsonable(log_frame(screening_log(st, cs, att, ovr, subject_ids=page_ids)).to_dict("records"))
            return rows

        rows = studies.result(f"screening:log:{stamp}:{number}", build)
        return {"rows": rows, "page": number, "n_pages": n_pages, "n_subjects": len(ids), "trial": cs.trial, "protocol_version": cs.protocol_version}

    def row_context(s: Session, subject_id: str, rep: EligibilityReport, r: Any, error: str | None = None) -> dict[str, Any]:
        return {
            "subject_id": subject_id,
            "cp": rep.checkpoint,
            "r": shown(s, r.to_dict()),
            "attestable": attestable(r.criterion),
            "can_attest": allowed(s.role, "attest"),
            "can_override": allowed(s.role, "override"),
            "error": error,
        }

    def report_context(s: Session, subject_id: str, rep: EligibilityReport) -> dict[str, Any]:
        return {
            "cp": rep.checkpoint,
            "day": rep.checkpoint_day,
            "verdict": rep.verdict,
            "computed_verdict": rep.computed_verdict,
            "reasons": [r.id for r in rep.reasons],
            "pending": [r.id for r in rep.pending],
            "rows": [row_context(s, subject_id, rep, r) for r in rep.results],
        }

    def no_trial_page(request: Request, s: Session) -> HTMLResponse:
        return page(request, "message.html", s, 404, title="Screening", message=f"Study {study_id} names no trial (meta 'trial'), so it has no eligibility criteria to show.", back="/")

    @app.get("/screening", response_class=HTMLResponse, include_in_schema=False)
    def screening_page(request: Request, page_number: Annotated[int, Query(alias="page", ge=1)] = 1, s: Session = Depends(page_user)) -> HTMLResponse:
        study = studies.get()
        if not study.meta.get("trial"):
            return no_trial_page(request, s)
        cs = criteria_of(study)
        return ctx.render(request, "screening.html", s, **log_page(study, cs, page_number))

    @app.get("/fragments/screening", response_class=HTMLResponse, include_in_schema=False)
    def screening_fragment(request: Request, page_number: Annotated[int, Query(alias="page", ge=1)] = 1, s: Session = Depends(page_user)) -> HTMLResponse:
        study = studies.get()
        return fragment(request, "_screening_table.html", s, **log_page(study, criteria_of(study), page_number))

    @app.get("/screening/{subject_id}", response_class=HTMLResponse, include_in_schema=False)
    def screening_subject_page(request: Request, subject_id: str, s: Session = Depends(page_user)) -> HTMLResponse:
        study = studies.get()
        if not study.meta.get("trial"):
            return no_trial_page(request, s)
        cs = criteria_of(study)
        known_subject(study, subject_id)
        reports = [report_context(s, subject_id, rep) for rep in subject_reports(study, cs, subject_id)]
        return ctx.render(
            request, "screening_subject.html", s, subject_id=subject_id, trial=cs.trial, protocol_version=cs.protocol_version, source=cs.source, reports=reports
        )

    def act(s: Session, subject_id: str, kind: str, criterion_id: str, checkpoint: str, build: Callable[[CriteriaSet, EligibilityReport | None], tuple[str, dict[str, Any]]], reason: str | None) -> dict[str, Any]:
        """Validate and store an attestation or override; return the stored annotation."""
        study = studies.get()
        cs = criteria_of(study)
        known_subject(study, subject_id)
        if checkpoint not in CHECKPOINTS:
            raise InputError([Problem("unknown checkpoint", column="checkpoint", value=checkpoint, expected="|".join(CHECKPOINTS))])
        if criterion_id in cs.ids() and not cs.get(criterion_id).applies_at(checkpoint):
            raise InputError([Problem(f"{criterion_id} does not apply at {checkpoint}", column="checkpoint", value=checkpoint, expected=", ".join(cs.get(criterion_id).checkpoints))])
        current = None
        if criterion_id in cs.ids():
            reached = [r for r in subject_reports(study, cs, subject_id) if r.checkpoint == checkpoint]
            if not reached:
                raise InputError([Problem(f"{subject_id} has not reached the {checkpoint} checkpoint", column="checkpoint", value=checkpoint)])
            current = reached[0]
        key, value = build(cs, current)
        ann_id = store.add_annotation(study_id, kind, subject_id, key, value, s.username, s.role, reason, source="web")
        return next(a for a in store.annotations(study_id, kind=kind, subject_id=subject_id) if a["id"] == ann_id)

    def attest_builder(criterion_id: str, checkpoint: str, value: bool) -> Callable[[CriteriaSet, EligibilityReport | None], tuple[str, dict[str, Any]]]:
        def build(cs: CriteriaSet, rep: EligibilityReport | None) -> tuple[str, dict[str, Any]]:
            key, val = attestation_annotation(cs, criterion_id, value, checkpoint)  # validates the criterion
            if not attestable(cs.get(criterion_id)):
                raise InputError([Problem(f"{criterion_id} is decided from the data, not by attestation (an investigator may override it)", column="criterion_id", value=criterion_id)])
            return key, val

        return build

    def override_builder(criterion_id: str, checkpoint: str, result: str) -> Callable[[CriteriaSet, EligibilityReport | None], tuple[str, dict[str, Any]]]:
        def build(cs: CriteriaSet, rep: EligibilityReport | None) -> tuple[str, dict[str, Any]]:
            computed = rep.result(criterion_id).computed if rep is not None else None
            return override_annotation(cs, criterion_id, result, checkpoint, computed=computed)

        return build

    def need_reason(reason: str | None, what: str) -> str:
        if reason is None or not reason.strip():
            raise InputError([Problem(f"{what} needs a reason", column="reason", value=reason, expected="a non-empty text")])
        return reason.strip()

    def criterion_response(request: Request, s: Session, subject_id: str, checkpoint: str, criterion_id: str, error: str | None, status_code: int) -> Response:
        """After a form post: the re-evaluated criterion row and checkpoint verdict (HTMX) or the page."""
        if not _is_htmx(request):
            if error is None:
                return RedirectResponse(f"/screening/{subject_id}#cp-{checkpoint}", status_code=303)
            return page(request, "message.html", s, status_code, title="Not recorded", message=error, back=f"/screening/{subject_id}")
        study = studies.get()
        cs = criteria_of(study)
        rep = next((r for r in subject_reports(study, cs, subject_id) if r.checkpoint == checkpoint), None)
        if rep is None or criterion_id not in [r.id for r in rep.results]:
            return HTMLResponse(f'<tr><td colspan="5" class="error">{_escape(error or "not recorded")}</td></tr>', status_code=status_code)
        return fragment(
            request, "_criterion_row.html", s, status_code=status_code, oob_verdict=report_context(s, subject_id, rep) | {"rows": []}, **row_context(s, subject_id, rep, rep.result(criterion_id), error)
        )

    @app.post("/screening/{subject_id}/attest", include_in_schema=False)
    def attest_form(
        request: Request,
        subject_id: str,
        checkpoint: Annotated[str, Form()],
        criterion_id: Annotated[str, Form()],
        value: Annotated[Literal["yes", "no"], Form()],
        reason: Annotated[str | None, Form()] = None,
        csrf: Annotated[str | None, Form()] = None,
        s: Session = Depends(page_user),
    ) -> Response:
        check_csrf(s, csrf or request.headers.get("X-CSRF-Token"))
        ctx.need(s, "attest")
        try:
            act(s, subject_id, ATTESTATION_KIND, criterion_id, checkpoint, attest_builder(criterion_id, checkpoint, value == "yes"), (reason or "").strip() or None)
        except Cd7kitError as exc:
            return criterion_response(request, s, subject_id, checkpoint, criterion_id, _message(exc), 422)
        return criterion_response(request, s, subject_id, checkpoint, criterion_id, None, 200)

    @app.post("/screening/{subject_id}/override", include_in_schema=False)
    def override_form(
        request: Request,
        subject_id: str,
        checkpoint: Annotated[str, Form()],
        criterion_id: Annotated[str, Form()],
        result: Annotated[Literal["MET", "NOT_MET", "UNKNOWN"], Form()],
        reason: Annotated[str | None, Form()] = None,
        csrf: Annotated[str | None, Form()] = None,
        s: Session = Depends(page_user),
    ) -> Response:
        check_csrf(s, csrf or request.headers.get("X-CSRF-Token"))
        ctx.need(s, "override")
        try:
            why = need_reason(reason, "an override")
            act(s, subject_id, OVERRIDE_KIND, criterion_id, checkpoint, override_builder(criterion_id, checkpoint, result), why)
        except Cd7kitError as exc:
            return criterion_response(request, s, subject_id, checkpoint, criterion_id, _message(exc), 422)
        return criterion_response(request, s, subject_id, checkpoint, criterion_id, None, 200)

    @app.get("/api/screening", summary="Screening log: each trial subject's verdict at each checkpoint reached (paged)")
    def api_screening(
        offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = ROWS_PER_PAGE, s: Session = Depends(api_user)
    ) -> dict[str, Any]:
        study = studies.get()
        cs = criteria_of(study)
        ids = trial_subject_ids(study)
        att, ovr, _ = records(study)
        log = screening_log(study, cs, att, ovr, subject_ids=ids[offset : offset + limit])
        return shown(
            s,
            jsonable(
                {
                    "trial": cs.trial,
                    "protocol_version": cs.protocol_version,
                    "n_subjects": len(ids),
                    "offset": offset,
                    "limit": limit,
                    "log": log_frame(log).to_dict("records"),
                    "rule": log[0].to_dict()["rule"] if log else None,
                }
            ),
        )

    @app.get("/api/screening/{subject_id}", summary="A subject's criterion results with evidence at each checkpoint reached, and the verdicts")
    def api_screening_subject(subject_id: str, s: Session = Depends(api_user)) -> dict[str, Any]:
        study = studies.get()
        cs = criteria_of(study)
        known_subject(study, subject_id)
        reports = subject_reports(study, cs, subject_id)
        return shown(s, jsonable({"trial": cs.trial, "protocol_version": cs.protocol_version, "subject_id": subject_id, "checkpoints": [r.to_dict() for r in reports]}))

    def api_act(s: Session, subject_id: str, kind: str, body: AttestationIn | OverrideIn, x_csrf_token: str | None) -> dict[str, Any]:
        check_csrf(s, x_csrf_token)
        if isinstance(body, OverrideIn):
            ctx.need(s, "override")
            rec = act(s, subject_id, kind, body.criterion_id, body.checkpoint, override_builder(body.criterion_id, body.checkpoint, body.result), need_reason(body.reason, "an override"))
        else:
            ctx.need(s, "attest")
            rec = act(s, subject_id, kind, body.criterion_id, body.checkpoint, attest_builder(body.criterion_id, body.checkpoint, body.value), (body.reason or "").strip() or None)
        study = studies.get()
        rep = next(r for r in subject_reports(study, criteria_of(study), subject_id) if r.checkpoint == body.checkpoint)
        return shown(s, jsonable({"annotation": rec, "criterion": rep.result(body.criterion_id).to_dict(), "verdict": rep.verdict, "computed_verdict": rep.computed_verdict}))

    @app.post("/api/screening/{subject_id}/attestations", status_code=201, summary="Attest a judgement criterion (coordinator, investigator, admin; header X-CSRF-Token)")
    def api_attest(subject_id: str, body: AttestationIn, x_csrf_token: Annotated[str | None, Header()] = None, s: Session = Depends(api_user)) -> dict[str, Any]:
        return api_act(s, subject_id, ATTESTATION_KIND, body, x_csrf_token)

    @app.post("/api/screening/{subject_id}/overrides", status_code=201, summary="Override a criterion's computed result with a reason (investigator, admin; header X-CSRF-Token)")
    def api_override(subject_id: str, body: OverrideIn, x_csrf_token: Annotated[str | None, Header()] = None, s: Session = Depends(api_user)) -> dict[str, Any]:
        return api_act(s, subject_id, OVERRIDE_KIND, body, x_csrf_token)

    @app.get("/api/csrf", summary="The session's CSRF token, to send as the X-CSRF-Token header of API writes")
    def api_csrf(s: Session = Depends(api_user)) -> dict[str, str]:
        return {"csrf": s.csrf, "header": "X-CSRF-Token"}

    # ---------------------------------------------------------------------------------------------
    # kinetics
    # ---------------------------------------------------------------------------------------------
    def kinetic_code(study: Study, code: str | None) -> str:
        present = [c for c in CAR_KINETIC_CODES if (study.observations["code"] == c).any()]
        if code is None:
            if not present:
                raise HTTPException(status_code=404, detail=f"study {study_id!r} has no CAR kinetics observations ({' or '.join(CAR_KINETIC_CODES)})")
            return present[0]
        if code not in present:
            raise HTTPException(status_code=404, detail=f"no {code!r} observations in study {study_id!r}; present: {', '.join(present) or 'none'}")
        return code

    def nca_tables(code: str) -> dict[str, Any]:
        def build(st: Study) -> dict[str, Any]:
            from cd7kit.kinetics.nca import nca, nca_summary

            res = nca(st, code)
            frame = res.to_frame()
            levels = st.subjects.set_index("subject_id")["dose_level"]
            frame["dose_level"] = frame["subject_id"].map(levels) if len(frame) else []
            by_level = {}
            for lvl, g in frame.groupby(frame["dose_level"].astype("Float64").fillna(-1.0), sort=True):
                name = "no dose level" if lvl == -1.0 else f"dose level {int(lvl)}"
                by_level[name] = nca_summary(g.drop(columns=["dose_level"]))
            return {"result": res.to_dict(), "rows": jsonable(frame.to_dict("records")), "by_dose_level": jsonable(by_level), "code": code}

        out: dict[str, Any] = studies.result(f"kinetics:nca:{code}", build)
        return out

    def nca_page(code: str, number: int) -> dict[str, Any]:
        t = nca_tables(code)
        number, n_pages = _pages(len(t["rows"]), number)
        return {
            "code": code,
            "rows": t["rows"][(number - 1) * ROWS_PER_PAGE : number * ROWS_PER_PAGE],
            "page": number,
            "n_pages": n_pages,
            "n_rows": len(t["rows"]),
            "by_dose_level": t["by_dose_level"],
            "rule": t["result"]["rule"],
        }

    @app.get("/kinetics", response_class=HTMLResponse, include_in_schema=False)
    def kinetics_page(
        request: Request, code: str | None = None, page_number: Annotated[int, Query(alias="page", ge=1)] = 1, s: Session = Depends(page_user)
    ) -> HTMLResponse:
        study = studies.get()
        present = [c for c in CAR_KINETIC_CODES if (study.observations["code"] == c).any()]
        if not present:
            return ctx.render(request, "message.html", s, title="CAR kinetics", message="This study has no CAR kinetics observations.", back="/")
        code = kinetic_code(study, code)
        return ctx.render(request, "kinetics.html", s, codes=present, **nca_page(code, page_number))

    @app.get("/fragments/kinetics/nca", response_class=HTMLResponse, include_in_schema=False)
    def nca_fragment(
        request: Request, code: str | None = None, page_number: Annotated[int, Query(alias="page", ge=1)] = 1, s: Session = Depends(page_user)
    ) -> HTMLResponse:
        code = kinetic_code(studies.get(), code)
        return fragment(request, "_nca_table.html", s, **nca_page(code, page_number))

    @app.get("/figures/kinetics.json", include_in_schema=False)
    def kinetics_figure(code: str | None = None, s: Session = Depends(api_user)) -> Response:
        code = kinetic_code(studies.get(), code)

        def build(st: Study) -> str:
            from cd7kit.report.figures import kinetics_spaghetti

            return str(kinetics_spaghetti(st, code).to_json())

        return Response(studies.result(f"figure:kinetics:{code}", build), media_type="application/json")

    @app.get("/api/kinetics/nca", summary="NCA of CAR kinetics per subject and infusion (PKNCA conventions), with summaries by dose level")
    def api_nca(code: Literal["CAR_COPIES", "CAR_CELLS"] | None = None, s: Session = Depends(api_user)) -> dict[str, Any]:
        t = nca_tables(kinetic_code(studies.get(), code))
        return shown(s, {**t["result"], "code": t["code"], "table": t["rows"], "by_dose_level": t["by_dose_level"]})

    # ---------------------------------------------------------------------------------------------
    # escalation decisions with an electronic signature
    # ---------------------------------------------------------------------------------------------
    def overview() -> StudyOverview:
        ov: StudyOverview = studies.result("overview", study_overview)
        return ov

    def decisions() -> list[dict[str, Any]]:
        return sorted(store.annotations(study_id, kind=ESCALATION_KIND, history=True), key=lambda a: -int(a["id"]))

    def escalation_context(s: Session, error: str | None = None, done: dict[str, Any] | None = None, form: dict[str, Any] | None = None) -> dict[str, Any]:
        esc = jsonable(overview().escalation.to_dict())
        rec = esc.get("recommendation") or {}
        default = {
            "decision": rec.get("action") if rec.get("action") in DECISIONS else "stay",
            "dose_level": rec.get("next_dose") if rec.get("next_dose") is not None else (rec.get("mtd") or {}).get("value"),
            "comment": "",
        }
        return {
            "escalation": shown(s, esc),
            "evidence": shown(s, _evidence_rows(esc)),
            "decisions": shown(s, decisions()),
            "can_sign": allowed(s.role, "sign"),
            "choices": DECISIONS,
            "meaning": SIGNATURE_MEANING,
            "error": error,
            "done": done,
            "form": {**default, **(form or {})},
        }

    def record_decision(request: Request, s: Session, decision: str, dose_level: int | None, comment: str, password: str) -> dict[str, Any]:
        """Sign and store an escalation decision; raise HTTPException (401 wrong password, 422, 429)."""
        ctx.need(s, "sign")
        client = _client(request)
        source = f"web e-signature from {client}"
        if ctx.limiter.blocked(s.username, client):
            store.record_event("signature.refused", "annotation", None, s.username, s.role, new={"kind": ESCALATION_KIND, "why": "too many failed attempts"}, study_id=study_id, source=source)
            raise HTTPException(status_code=429, detail="Too many failed password attempts: wait five minutes.")
        esc = overview().escalation
        levels = [d.dose for d in esc.doses]
        problems = []
        if decision not in DECISIONS:
            problems.append(Problem("unknown decision", column="decision", value=decision, expected="|".join(DECISIONS)))
        if dose_level is None and decision != "stop":
            problems.append(Problem(f"a decision to {decision} needs the dose level of the next cohort", column="dose_level", expected=", ".join(map(str, levels))))
        if dose_level is not None and dose_level not in levels:
            problems.append(Problem("unknown dose level", column="dose_level", value=dose_level, expected=", ".join(map(str, levels))))
        if not comment or not comment.strip():
            problems.append(Problem("a decision needs a comment (its rationale)", column="comment", expected="a non-empty text"))
        if problems:
            raise HTTPException(status_code=422, detail=_message(InputError(problems)))
        rec = esc.recommendation
        expected = None if rec is None else (rec.value if rec.action != "stop" else (rec.mtd.value if rec.mtd is not None else None))
        value = {
            "decision": decision,
            "dose_level": dose_level,
            "comment": comment.strip(),
            "current_dose_level": esc.current,
            "recommendation": None if rec is None else {"action": rec.action, "next_dose": rec.value, "mtd": expected if rec.action == "stop" else None, "reason": rec.reason, "rule": rec.rule.to_dict()},
            "agrees_with_recommendation": None if rec is None else bool(decision == rec.action and dose_level == expected),
            "doses": [{"dose": d.dose, "label": d.label, "n": d.n, "dlt": d.dlt, "pending": d.pending} for d in esc.doses],
            "design": esc.design,
            "target": esc.target,
        }
        key = f"cohort-state:n={sum(d.n for d in esc.doses)}:dlt={sum(d.dlt for d in esc.doses)}:pending={sum(d.pending for d in esc.doses)}"
        try:
            ann_id = store.add_annotation(
                study_id, ESCALATION_KIND, None, key, jsonable(value), s.username, s.role, comment.strip(), signature_meaning=SIGNATURE_MEANING, password=password, source=source
            )
        except AuthorizationError as exc:
            ctx.limiter.failed(s.username, client)
            store.record_event("signature.refused", "annotation", None, s.username, s.role, new={"kind": ESCALATION_KIND, "why": str(exc)}, study_id=study_id, source=source)
            raise HTTPException(status_code=401, detail="Signature refused: the password is not right for this account.") from exc
        ctx.limiter.succeeded(s.username)
        return next(a for a in store.annotations(study_id, kind=ESCALATION_KIND, history=True) if a["id"] == ann_id)

    @app.get("/escalation", response_class=HTMLResponse, include_in_schema=False)
    def escalation_page(request: Request, s: Session = Depends(page_user)) -> HTMLResponse:
        return ctx.render(request, "escalation.html", s, **escalation_context(s))

    @app.get("/fragments/escalation/evidence", response_class=HTMLResponse, include_in_schema=False)
    def escalation_evidence(request: Request, s: Session = Depends(page_user)) -> HTMLResponse:
        esc = jsonable(overview().escalation.to_dict())
        return fragment(request, "_escalation_evidence.html", s, evidence=shown(s, _evidence_rows(esc)))

    @app.post("/escalation/decisions", include_in_schema=False)
    def decision_form(
        request: Request,
        decision: Annotated[str, Form()],
        comment: Annotated[str, Form()],
        password: Annotated[str, Form()],
        dose_level: Annotated[str | None, Form()] = None,
        csrf: Annotated[str | None, Form()] = None,
        s: Session = Depends(page_user),
    ) -> Response:
        check_csrf(s, csrf or request.headers.get("X-CSRF-Token"))
        ctx.need(s, "sign")
        form = {"decision": decision, "dose_level": dose_level, "comment": comment}
        try:
            level = int(dose_level) if dose_level not in (None, "", "none") else None
        except ValueError:
            level = -1  # reported as an unknown dose level
        try:
            done = record_decision(request, s, decision, level, comment, password)
        except HTTPException as exc:
            if exc.status_code in (401, 422, 429):
                c = escalation_context(s, error=str(exc.detail), form=form)
                if _is_htmx(request):
                    return fragment(request, "_decision_panel.html", s, status_code=exc.status_code, **c)
                return page(request, "escalation.html", s, exc.status_code, **c)
            raise
        if _is_htmx(request):
            return fragment(request, "_decision_panel.html", s, **escalation_context(s, done=done))
        return RedirectResponse("/escalation#decisions", status_code=303)

    @app.get("/api/escalation/decisions", summary="Recorded dose-escalation decisions with their electronic signatures (newest first)")
    def api_decisions(s: Session = Depends(api_user)) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = shown(s, jsonable(decisions()))
        return out

    @app.post("/api/escalation/decisions", status_code=201, summary="Record a dose-escalation decision, signed by re-entering the password (investigator, admin; header X-CSRF-Token)")
    def api_decide(body: DecisionIn, request: Request, x_csrf_token: Annotated[str | None, Header()] = None, s: Session = Depends(api_user)) -> dict[str, Any]:
        check_csrf(s, x_csrf_token)
        out: dict[str, Any] = jsonable(record_decision(request, s, body.decision, body.dose_level, body.comment, body.password))
        return out


def _evidence_rows(esc: dict[str, Any]) -> list[dict[str, Any]]:
    """The escalation state's evidence rows, then the recommendation's rows not already among them."""
    rows = list(esc.get("evidence") or [])
    return rows + [e for e in ((esc.get("recommendation") or {}).get("evidence") or []) if e not in rows]


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


__all__ = ["WebContext", "register_workflows", "ESCALATION_KIND", "SIGNATURE_MEANING", "DECISIONS", "scrub", "attestable"]
