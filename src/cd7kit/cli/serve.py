"""``cd7kit serve``: the web dashboard on the embedded demo study (or a stored study)."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import typer

from ._common import DB_HELP, console, emit, ensure_demo_study

DEMO_USER = "demo"


def serve(
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    study: str | None = typer.Option(None, "--study", help="Stored study to serve (default: the embedded demo study)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, "--port"),
    insecure_cookies: bool = typer.Option(False, "--insecure-cookies", help="Send session cookies over plain HTTP to non-loopback hosts (testing only)."),
    as_json: bool = typer.Option(False, "--json", help="Print where it serves (and the demo account) as JSON on stdout, then serve."),
) -> None:
    """Serve the dashboard. Without --study, loads the demo study and a demo account whose password is printed."""
    import uvicorn

    from cd7kit.datasets import DEMO_STUDY_ID
    from cd7kit.errors import ConflictError
    from cd7kit.store import open_store
    from cd7kit.web import create_app

    store = open_store(db)
    study_id = study
    info: dict[str, Any] = {"url": f"http://{host}:{port}/", "study_id": study, "database": store.url, "demo_account": None}
    if study_id is None:
        ensure_demo_study(store)
        study_id = info["study_id"] = DEMO_STUDY_ID
        password = secrets.token_urlsafe(12)
        try:
            store.add_user(DEMO_USER, "Demo Investigator", "investigator", password, actor="cd7kit-serve", actor_role="system", reason="demo account")
        except ConflictError:
            store.set_password(DEMO_USER, password, actor="cd7kit-serve", actor_role="system", reason="new demo password at server start")
        info["demo_account"] = {"username": DEMO_USER, "password": password, "role": "investigator"}

    def render(o: dict[str, Any]) -> None:
        if o["demo_account"]:
            console.print(f"Demo account: user [bold]{DEMO_USER}[/] password [bold]{o['demo_account']['password']}[/] (investigator)")
        console.print(f"cd7kit serving study [bold]{o['study_id']}[/] on {o['url']}")

    emit(info, as_json, render)
    app = create_app(store, study_id, secure_cookies=not insecure_cookies)
    threading.Thread(target=app.state.warm, name="cd7kit-warm", daemon=True).start()
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
