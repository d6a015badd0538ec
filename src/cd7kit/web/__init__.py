"""The web dashboard and JSON API (FastAPI, Jinja2, plotly.js served locally). See :mod:`cd7kit.web.app`."""

from .app import create_app

__all__ = ["create_app"]
