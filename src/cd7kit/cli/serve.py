"""``cd7kit serve``: the web dashboard on the embedded demo study (or a stored study)."""

from __future__ import annotations

import secrets

import typer

from ._common import DB_HELP, console, ensure_demo_study

DEMO_USER = "demo"


def serve(
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    study: str | None = typer.Option(None, "--study", help="Stored study to serve (default: the embedded demo study)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, "--port"),
    insecure_cookies: bool = typer.Option(False, "--insecure-cookies", help="Send session cookies over plain HTTP to non-loopback hosts (testing only)."),
) -> None:
    """Serve the dashboard. Without --study, loads the demo study and a demo account whose password is printed."""
    import uvicorn

    from cd7kit.datasets import DEMO_STUDY_ID
    from cd7kit.errors import ConflictError
    from cd7kit.store import open_store
    from cd7kit.web import create_app

    store = open_store(db)
    study_id = study
    if study_id is None:
        ensure_demo_study(store)
        study_id = DEMO_STUDY_ID
        password = secrets.token_urlsafe(12)
        try:
            store.add_user(DEMO_USER, "Demo Investigator", "investigator", password, actor="cd7kit-serve", actor_role="system", reason="demo account")
        except ConflictError:
            store.set_password(DEMO_USER, password, actor="cd7kit-serve", actor_role="system", reason="new demo password at server start")
        console.print(f"Demo account: user [bold]{DEMO_USER}[/] password [bold]{password}[/] (investigator)")
    console.print(f"cd7kit serving study [bold]{study_id}[/] on http://{host}:{port}/")
    app = create_app(store, study_id, secure_cookies=not insecure_cookies)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
