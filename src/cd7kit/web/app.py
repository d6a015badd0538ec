"""The cd7kit web app: server-rendered pages and a JSON API over a stored study (FastAPI).

The app only shows what the Study holds and what the engines compute; every write goes through the
store's audited service. Pages: login, study overview, subject timeline, audit log (monitor, admin).
API: ``/api/...`` (OpenAPI at ``/openapi.json``). plotly.js is served from the installed plotly package,
so the app works offline. See :mod:`cd7kit.web.security` for sessions, CSRF, rate limiting and roles.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from cd7kit import __version__
from cd7kit.data import Study, jsonable
from cd7kit.errors import Cd7kitError, NotFoundError
from cd7kit.report.figures import grade_bands, subject_timeline, survival_figure, swimmer_plot
from cd7kit.report.overview import study_overview
from cd7kit.store import Store

from .security import IDENTIFYING_COLUMNS, LoginLimiter, Session, SessionStore, allowed, csrf_ok

SESSION_COOKIE = "cd7kit_session"
LOGIN_CSRF_COOKIE = "cd7kit_login_csrf"


def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


class StudyCache:
    """Loads the served study from the store once per stored version, and keeps the engines' results for
    that version: they are pure functions of the Study, so a new version is the only reason to recompute."""

    def __init__(self, store: Store, study_id: str):
        self.store, self.study_id = store, study_id
        self._key: Any = None
        self._study: Study | None = None
        self._results: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self) -> Study:
        versions = self.store.versions(self.study_id)
        if not versions:
            raise NotFoundError(f"no study {self.study_id!r} in the database")
        key = versions[-1].get("version")
        with self._lock:
            if self._study is None or key != self._key:
                self._study = self.store.load_study(self.study_id)
                self._key = key
                self._results = {}
            return self._study

    def result(self, name: str, compute: Callable[[Study], Any]) -> Any:
        """``compute(study)`` for the current version, computed once."""
        study = self.get()
        with self._lock:
            if name in self._results:
                return self._results[name]
        value = compute(study)
        with self._lock:
            self._results[name] = value
        return value


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

    @app.get("/static/app.css", include_in_schema=False)
    def css() -> FileResponse:
        return FileResponse(str(resources.files("cd7kit.web") / "static" / "app.css"), media_type="text/css")

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
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def overview(request: Request, s: Session = Depends(page_user)) -> HTMLResponse:
        study = studies.get()
        ov = studies.result("overview", study_overview)
        summary, grades, escalation = ov.summary, ov.grading, ov.escalation.to_dict()
        flow = None if ov.screening is None else ov.screening.to_dict()
        subjects = study.subjects if allowed(s.role, "view_identifying") else deidentify(study.subjects)
        by_level: dict[str, dict[str, list[Any]]] = {}
        infused = set(study.infusions()["subject_id"])
        for r in study.subjects[study.subjects["subject_id"].isin(infused)].sort_values("dose_level").to_dict("records"):
            g = grades.get(r["subject_id"], {})
            level = "no dose level" if pd.isna(r["dose_level"]) else f"level {int(r['dose_level'])}"
            by_level.setdefault(level, {"crs": [], "icans": []})
            by_level[level]["crs"].append(g.get("max_crs"))
            by_level[level]["icans"].append(g.get("max_icans"))
        swimmer = studies.result("swimmer", lambda st: swimmer_plot(st, {k: v.get("max_crs") for k, v in grades.items()}).to_json())
        return render(request, "overview.html", s, summary=summary, subjects=subjects.to_dict("records"), swimmer=swimmer,
                      grades=grades, by_level=by_level, escalation=escalation, flow=flow)

    @app.get("/subjects/{subject_id}", response_class=HTMLResponse, include_in_schema=False)
    def subject_page(request: Request, subject_id: str, s: Session = Depends(page_user)) -> HTMLResponse:
        from cd7kit.clinical import grade_all

        study = studies.get()
        if subject_id not in study.subject_ids:
            raise HTTPException(status_code=404, detail=f"no subject {subject_id!r}")
        sub = study.subject(subject_id)

        def timeline(st: Study) -> tuple[list[dict[str, Any]], str]:
            graded = grade_all(st.subject(subject_id), systems=("crs", "icans"))
            res = [r.to_dict() for r in graded["crs"] + graded["icans"]]
            return res, subject_timeline(st, subject_id, grade_bands=grade_bands(res)).to_json()

        results, fig_json = studies.result(f"timeline:{subject_id}", timeline)
        events = sub.events.sort_values("day")
        row = study.subjects[study.subjects["subject_id"] == subject_id]
        shown = row if allowed(s.role, "view_identifying") else deidentify(row)
        return render(request, "subject.html", s, subject_id=subject_id, timeline=fig_json, events=events.to_dict("records"),
                      subject=jsonable(shown.iloc[0].to_dict()), grades=results,
                      adjudications=store.annotations(study_id, kind="dlt_adjudication", subject_id=subject_id), can_adjudicate=allowed(s.role, "adjudicate"))

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
        return RedirectResponse(f"/subjects/{subject_id}", status_code=303)

    @app.get("/outcomes", response_class=HTMLResponse, include_in_schema=False)
    def outcomes_page(request: Request, s: Session = Depends(page_user)) -> HTMLResponse:
        from cd7kit.clinical.outcomes import cumulative_incidence, kaplan_meier

        study = studies.get()
        surv = survival_figure([kaplan_meier(study, "os"), kaplan_meier(study, "efs")], "Overall and event-free survival")
        cir = survival_figure([cumulative_incidence(study)], "Cumulative incidence of relapse (death without relapse competing)")
        return render(request, "outcomes.html", s, survival=surv.to_json(), cir=cir.to_json())

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

    return app


__all__ = ["create_app", "SESSION_COOKIE"]
