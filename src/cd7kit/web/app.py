"""The cd7kit web app: server-rendered pages and a JSON API over a stored study (FastAPI).

The app only shows what the Study holds and what the engines compute; every write goes through the
store's audited service. Pages: login, study overview, subject timeline, audit log (monitor, admin).
API: ``/api/...`` (OpenAPI at ``/openapi.json``). plotly.js is served from the installed plotly package,
so the app works offline. See :mod:`cd7kit.web.security` for sessions, CSRF, rate limiting and roles.
"""

from __future__ import annotations

import gc
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import pandas as pd
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from cd7kit import __version__
from cd7kit.data import Study, jsonable
from cd7kit.errors import Cd7kitError, NotFoundError
from cd7kit.report.figures import grade_bands, subject_timeline, survival_figure, swimmer_plot
from cd7kit.report.overview import study_overview, trial_subject_ids
from cd7kit.store import Store

from .security import IDENTIFYING_COLUMNS, LoginLimiter, Session, SessionStore, allowed, csrf_ok
from .workflows import WebContext, register_workflows, screening_records

SESSION_COOKIE = "cd7kit_session"
LOGIN_CSRF_COOKIE = "cd7kit_login_csrf"
#: Placeholder for the session's CSRF token in page fragments that are cached across users.
CSRF_SLOT = "__cd7kit_csrf_slot__"
SUBJECTS_PER_PAGE = 50


def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


class StudyCache:
    """The served study, loaded once per stored version, and what is computed from it for that version.

    Engine results and rendered page fragments are pure functions of the Study, so a new stored version is
    the only reason to recompute them. They are kept in a bounded LRU (``max_results`` entries), and keyed
    by version, so a result computed for an old version is never served for a new one. Concurrent requests
    for a result not yet computed wait for the one computation instead of repeating it (single flight).
    """

    def __init__(self, store: Store, study_id: str, max_results: int = 512):
        self.store, self.study_id, self.max_results = store, study_id, max_results
        self._key: int | None = None
        self._study: Study | None = None
        self._results: OrderedDict[tuple[int, str], Any] = OrderedDict()
        self._pending: dict[tuple[int, str], threading.Event] = {}
        self._lock = threading.Lock()

    def get(self) -> Study:
        """The current version of the study (one cheap query to learn whether it changed)."""
        return self._current()[1]

    def _current(self) -> tuple[int, Study]:
        """The current version number and Study, read together (a result is never keyed by one version and
        computed from another)."""
        key = self.store.latest_version(self.study_id)
        with self._lock:
            if self._study is None or key != self._key:
                # the previous version's objects may have been frozen (see freeze): let the collector see them
                gc.unfreeze()
                self._study = self.store.load_study(self.study_id, key)
                self._key = key
                self._results.clear()
            return int(self._key or 0), self._study

    @property
    def version(self) -> int | None:
        """The stored version the cache currently holds (None before the first request)."""
        return self._key

    @staticmethod
    def freeze() -> None:
        """Move everything alive now out of the cyclic collector's reach (``gc.freeze``).

        A warmed cache holds a whole study's engine results: hundreds of thousands of long-lived objects that
        every full collection would scan again (about 0.15 s for a 1,000-subject study), stalling every
        request in flight. Frozen objects are still freed by reference counting; a new version unfreezes.
        """
        gc.collect()
        gc.freeze()

    def result(self, name: str, compute: Callable[[Study], Any]) -> Any:
        """``compute(study)`` for the current version, computed once."""
        version, study = self._current()
        k = (version, name)
        while True:
            with self._lock:
                if k in self._results:
                    self._results.move_to_end(k)
                    return self._results[k]
                gate = self._pending.get(k)
                owner = gate is None
                if gate is None:
                    gate = self._pending[k] = threading.Event()
            if not owner:
                gate.wait()
                continue  # the owner stored the result, or failed and the next caller computes it
            try:
                value = compute(study)
                with self._lock:
                    self._results[k] = value
                    while len(self._results) > self.max_results:
                        self._results.popitem(last=False)
                return value
            finally:
                with self._lock:
                    self._pending.pop(k, None)
                gate.set()


def deidentify(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[c for c in IDENTIFYING_COLUMNS if c in df.columns])


def create_app(store: Store, study_id: str, *, secure_cookies: bool = True) -> FastAPI:
    """The app serving ``study_id`` from ``store``."""
    app = FastAPI(title="cd7kit", version=__version__, description="CD7 CAR-T / CAR-NK trial dashboard and API")
    templates = Jinja2Templates(directory=str(resources.files("cd7kit.web") / "templates"))
    sessions = SessionStore()
    limiter = LoginLimiter()
    studies = StudyCache(store, study_id)
    app.state.store, app.state.sessions, app.state.limiter, app.state.study_id = store, sessions, limiter, study_id

    def current(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(SESSION_COOKIE))

    def page_user(request: Request) -> Session:
        s = current(request)
        if s is None:
            raise HTTPException(status_code=303, headers={"Location": "/login"})
        return s

    def api_user(request: Request) -> Session:
        s = current(request)
        if s is None:
            raise HTTPException(status_code=401, detail="log in first")
        return s

    def need(s: Session, permission: str) -> None:
        if not allowed(s.role, permission):
            raise HTTPException(status_code=403, detail=f"role {s.role!r} may not {permission.replace('_', ' ')}")

    def render(request: Request, name: str, s: Session | None, **ctx: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"user": s, "version": __version__, "study_id": study_id, **ctx})

    @app.exception_handler(Cd7kitError)
    async def _cd7kit_error(request: Request, exc: Cd7kitError) -> Response:
        payload = exc.to_dict() if hasattr(exc, "to_dict") else {"error": type(exc).__name__, "message": str(exc)}
        return JSONResponse(jsonable(payload), status_code=404 if isinstance(exc, NotFoundError) else 400)

    # -- static ---------------------------------------------------------------------------------
    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(_plotly_js(), media_type="application/javascript")

    app.mount("/static", StaticFiles(directory=str(resources.files("cd7kit.web") / "static")), name="static")

    # -- login ----------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request) -> HTMLResponse:
        import secrets

        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
        resp = render(request, "login.html", None, csrf=token, error=None)
        resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure_cookies)
        return resp

    @app.post("/login", include_in_schema=False)
    def login(
        request: Request,
        username: Annotated[str, Form()],
        password: Annotated[str, Form()],
        csrf: Annotated[str, Form()],
    ) -> Response:
        client = request.client.host if request.client else "unknown"
        if not csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE), csrf):
            raise HTTPException(status_code=403, detail="invalid CSRF token")
        if limiter.blocked(username, client):
            resp = render(request, "login.html", None, csrf=csrf, error="Too many failed attempts: wait five minutes.")
            resp.status_code = 429
            return resp
        user = store.authenticate(username, password, source=f"web login from {client}")
        if user is None or user.get("disabled"):
            limiter.failed(username, client)
            resp = render(request, "login.html", None, csrf=csrf, error="Unknown user name or wrong password.")
            resp.status_code = 401
            return resp
        limiter.succeeded(username)
        token, _ = sessions.create(user["username"], user.get("full_name") or user["username"], user["role"])
        done = RedirectResponse("/", status_code=303)
        done.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=secure_cookies)
        done.delete_cookie(LOGIN_CSRF_COOKIE)
        return done

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: Annotated[str, Form()], s: Session = Depends(page_user)) -> Response:
        if not csrf_ok(s.csrf, csrf):
            raise HTTPException(status_code=403, detail="invalid CSRF token")
        sessions.drop(request.cookies.get(SESSION_COOKIE))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE)
        return resp

    # -- pages ----------------------------------------------------------------------------------
    # Page content is rendered once per study version and role into a fragment (LRU-cached with the
    # engine results); a request then only renders the frame around it. Forms in a cached fragment carry
    # CSRF_SLOT, replaced by the session's own token when the page is sent.
    def fragment(key: str, s: Session, template: str, build: Callable[[Study], dict[str, Any]]) -> Markup:
        def compute(st: Study) -> str:
            stand_in = SimpleNamespace(role=s.role, csrf=CSRF_SLOT)
            return templates.get_template(template).render(user=stand_in, study_id=study_id, **build(st))

        html: str = studies.result(f"html:{key}:{s.role}", compute)
        return Markup(html.replace(CSRF_SLOT, s.csrf))

    def page(request: Request, s: Session, title: str, *parts: Markup) -> HTMLResponse:
        return render(request, "page.html", s, title=title, main=Markup("").join(parts))

    def overview_context(st: Study) -> dict[str, Any]:
        ov = studies.result("overview", study_overview)
        grades = ov.grading
        infused = set(st.infusions()["subject_id"])
        by_level: dict[str, dict[str, list[Any]]] = {}
        for r in st.subjects[st.subjects["subject_id"].isin(infused)].sort_values("dose_level").to_dict("records"):
            g = grades.get(r["subject_id"], {})
            level = "no dose level" if pd.isna(r["dose_level"]) else f"level {int(r['dose_level'])}"
            by_level.setdefault(level, {"crs": [], "icans": []})
            by_level[level]["crs"].append(g.get("max_crs"))
            by_level[level]["icans"].append(g.get("max_icans"))
        rows = jsonable(st.subjects.to_dict("records"))
        for r in rows:
            g = grades.get(r["subject_id"], {})
            r["max_crs"], r["max_icans"] = g.get("max_crs"), g.get("max_icans")
        return {
            "summary": ov.summary,
            "escalation": jsonable(ov.escalation.to_dict()),
            "by_level": by_level,
            "rows": rows,
        }

    def screening_flow_of(st: Study, att: list[dict[str, Any]], ovr: list[dict[str, Any]]) -> dict[str, Any] | None:
        if not st.meta.get("trial"):
            return None
        from cd7kit.clinical.eligibility import screening_flow

        flow: dict[str, Any] = jsonable(screening_flow(st, str(st.meta["trial"]), att, ovr, subject_ids=trial_subject_ids(st)).to_dict())
        return flow

    def subjects_page(rows: list[dict[str, Any]], number: int, role: str) -> dict[str, Any]:
        n_pages = max(1, math.ceil(len(rows) / SUBJECTS_PER_PAGE))
        number = min(max(1, number), n_pages)
        shown = rows[(number - 1) * SUBJECTS_PER_PAGE : number * SUBJECTS_PER_PAGE]
        if not allowed(role, "view_identifying"):
            shown = [{k: v for k, v in r.items() if k not in IDENTIFYING_COLUMNS} for r in shown]
        return {"rows": shown, "page": number, "n_pages": n_pages, "n_rows": len(rows)}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview(request: Request, page_number: Annotated[int, Query(alias="page", ge=1)] = 1, s: Session = Depends(page_user)) -> HTMLResponse:
        ctx = studies.result("overview:context", overview_context)
        number = subjects_page(ctx["rows"], page_number, s.role)["page"]
        # The screening flow also counts attestations and overrides recorded in the store since the version.
        att, ovr, stamp = screening_records(store, study_id, studies.get())
        flow = studies.result(f"overview:flow:{stamp}", lambda st: screening_flow_of(st, att, ovr))
        main = fragment(f"overview:{stamp}:{number}", s, "_overview.html", lambda st: {**ctx, "flow": flow, **subjects_page(ctx["rows"], number, s.role)})
        return page(request, s, "Overview", main)

    @app.get("/fragments/subjects", response_class=HTMLResponse, include_in_schema=False)
    def subjects_fragment(page_number: Annotated[int, Query(alias="page", ge=1)] = 1, s: Session = Depends(page_user)) -> HTMLResponse:
        ctx = studies.result("overview:context", overview_context)
        number = subjects_page(ctx["rows"], page_number, s.role)["page"]
        return HTMLResponse(fragment(f"subjects:{number}", s, "_subjects_table.html", lambda st: subjects_page(ctx["rows"], number, s.role)))

    @app.get("/figures/swimmer.json", include_in_schema=False)
    def swimmer_figure(s: Session = Depends(api_user)) -> Response:
        def build(st: Study) -> str:
            grades = studies.result("overview", study_overview).grading
            return str(swimmer_plot(st, {k: v.get("max_crs") for k, v in grades.items()}).to_json())

        return Response(studies.result("figure:swimmer", build), media_type="application/json")

    @app.get("/subjects/{subject_id}", response_class=HTMLResponse, include_in_schema=False)
    def subject_page(request: Request, subject_id: str, s: Session = Depends(page_user)) -> HTMLResponse:
        from cd7kit.clinical import grade_all

        study = studies.get()
        if subject_id not in study.subject_ids:
            raise HTTPException(status_code=404, detail=f"no subject {subject_id!r}")

        def build(st: Study) -> dict[str, Any]:
            sub = st.subject(subject_id)
            graded = grade_all(sub, systems=("crs", "icans"))
            results = [r.to_dict() for r in graded["crs"] + graded["icans"]]
            fig = subject_timeline(st, subject_id, grade_bands=grade_bands(results)).to_json()
            shown = sub.subjects if allowed(s.role, "view_identifying") else deidentify(sub.subjects)
            return {"subject_id": subject_id, "timeline": fig, "events": jsonable(sub.events.sort_values("day").to_dict("records")),
                    "subject": jsonable(shown.iloc[0].to_dict()), "grades": jsonable(results), "can_adjudicate": allowed(s.role, "adjudicate")}

        main = fragment(f"subject:{subject_id}", s, "_subject.html", build)
        return page(request, s, subject_id, main, Markup(adjudications_html(subject_id)))

    def adjudications_html(subject_id: str) -> str:
        return templates.get_template("_adjudications.html").render(
            adjudications=store.annotations(study_id, kind="dlt_adjudication", subject_id=subject_id))

    @app.get("/api/subjects/{subject_id}/grades", summary="ASTCT CRS and ICANS grades with evidence")
    def api_grades(subject_id: str, s: Session = Depends(api_user)) -> dict[str, Any]:
        from cd7kit.clinical import grade_all

        study = studies.get()
        if subject_id not in study.subject_ids:
            raise HTTPException(status_code=404, detail=f"no subject {subject_id!r}")
        graded = grade_all(study.subject(subject_id), systems=("crs", "icans"))
        return {k: [r.to_dict() for r in v] for k, v in graded.items()}

    @app.get("/api/escalation", summary="Escalation state and next recommended dose with evidence")
    def api_escalation(s: Session = Depends(api_user)) -> dict[str, Any]:
        result: dict[str, Any] = studies.result("overview", study_overview).escalation.to_dict()
        return result

    @app.post("/subjects/{subject_id}/dlt", include_in_schema=False)
    def adjudicate_dlt(
        request: Request,
        subject_id: str,
        event_row: Annotated[int, Form()],
        decision: Annotated[str, Form()],
        reason: Annotated[str, Form()],
        csrf: Annotated[str, Form()],
        s: Session = Depends(page_user),
    ) -> Response:
        if not csrf_ok(s.csrf, csrf):
            raise HTTPException(status_code=403, detail="invalid CSRF token")
        need(s, "adjudicate")
        if decision not in ("dlt", "not_dlt"):
            raise HTTPException(status_code=422, detail="decision must be dlt or not_dlt")
        study = studies.get()
        ev = study.events[(study.events["subject_id"] == subject_id) & (study.events["row_id"] == event_row)]
        if ev.empty:
            raise HTTPException(status_code=404, detail=f"no event row {event_row} for {subject_id}")
        store.add_annotation(study_id, "dlt_adjudication", subject_id, f"event:{event_row}", {"decision": decision, "event": jsonable(ev.iloc[0].to_dict())}, s.username, s.role, reason, source="web")
        if request.headers.get("HX-Request"):  # HTMX swaps in the updated list; a plain form reloads the page
            return HTMLResponse(adjudications_html(subject_id))
        return RedirectResponse(f"/subjects/{subject_id}", status_code=303)

    @app.get("/outcomes", response_class=HTMLResponse, include_in_schema=False)
    def outcomes_page(request: Request, s: Session = Depends(page_user)) -> HTMLResponse:
        from cd7kit.clinical.outcomes import cumulative_incidence, kaplan_meier

        def build(st: Study) -> dict[str, Any]:
            surv = survival_figure([kaplan_meier(st, "os"), kaplan_meier(st, "efs")], "Overall and event-free survival")
            cir = survival_figure([cumulative_incidence(st)], "Cumulative incidence of relapse (death without relapse competing)")
            return {"survival": surv.to_json(), "cir": cir.to_json()}

        return render(request, "outcomes.html", s, **studies.result("outcomes:figures", build))

    @app.get("/api/outcomes/{endpoint}", summary="Kaplan-Meier (os, efs) or cumulative incidence (cir) with evidence")
    def api_outcomes(endpoint: str, s: Session = Depends(api_user)) -> dict[str, Any]:
        from cd7kit.clinical.outcomes import cumulative_incidence, kaplan_meier

        if endpoint not in ("os", "efs", "cir"):
            raise HTTPException(status_code=404, detail="endpoint must be os, efs or cir")
        study = studies.get()
        est = cumulative_incidence(study) if endpoint == "cir" else kaplan_meier(study, endpoint)
        return jsonable(est.to_dict())

    @app.get("/audit", response_class=HTMLResponse, include_in_schema=False)
    def audit_page(request: Request, s: Session = Depends(page_user)) -> HTMLResponse:
        need(s, "view_audit")
        return render(request, "audit.html", s, records=store.audit_log(limit=500), verification=store.verify_audit().to_dict())

    # -- JSON API -------------------------------------------------------------------------------
    @app.get("/api/study", summary="Study overview counts")
    def api_study(s: Session = Depends(api_user)) -> dict[str, Any]:
        return jsonable(studies.get().summary())

    @app.get("/api/subjects", summary="Subjects (identifying columns hidden from statisticians)")
    def api_subjects(s: Session = Depends(api_user)) -> list[dict[str, Any]]:
        subj = studies.get().subjects
        return jsonable(subj if allowed(s.role, "view_identifying") else deidentify(subj))

    @app.get("/api/subjects/{subject_id}/observations", summary="A subject's observations (canonical units)")
    def api_observations(subject_id: str, code: str | None = None, s: Session = Depends(api_user)) -> list[dict[str, Any]]:
        study = studies.get()
        if subject_id not in study.subject_ids:
            raise HTTPException(status_code=404, detail=f"no subject {subject_id!r}")
        obs = study.subject(subject_id).observations
        if code:
            obs = obs[obs["code"] == code]
        return jsonable(obs if allowed(s.role, "view_identifying") else deidentify(obs))

    @app.get("/api/audit", summary="Audit trail (monitor, admin)")
    def api_audit(limit: int = 200, s: Session = Depends(api_user)) -> list[dict[str, Any]]:
        need(s, "view_audit")
        return jsonable(store.audit_log(limit=max(1, min(limit, 5000))))

    @app.get("/api/me", summary="The logged-in user")
    def api_me(s: Session = Depends(api_user)) -> dict[str, Any]:
        return {"username": s.username, "full_name": s.full_name, "role": s.role}

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    def warm() -> None:
        """Compute the overview's engine results for the current version (``cd7kit serve`` calls this in the
        background at start, so the first visitor does not wait for a whole study's grading)."""
        studies.result("overview:context", overview_context)
        studies.freeze()

    # screening, kinetics and signed escalation decisions (cd7kit.web.workflows)
    register_workflows(app, WebContext(store, study_id, studies, templates, render, page_user, api_user, need, limiter))
    app.state.warm = warm
    return app


__all__ = ["create_app", "SESSION_COOKIE"]
