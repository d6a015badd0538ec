"""Sessions, CSRF tokens, login rate limiting and role permissions for the web app.

Expectations (specs/data-and-platform.md section 5; 21 CFR 11.10(d),(g); REDCap practice): limited
system access, authority checks per role, a 30-minute idle timeout, no identifying fields for the
statistician. Sessions live server-side (the cookie holds only a random token: secure, HTTP-only,
SameSite=Strict); every state-changing form carries a per-session CSRF token checked in constant time.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

ROLES = ("admin", "investigator", "coordinator", "monitor", "statistician")

#: What each role may do. Monitors read everything and write nothing; statisticians see no identifying fields.
PERMISSIONS: dict[str, frozenset[str]] = {
    "view": frozenset(ROLES),
    "view_identifying": frozenset({"admin", "investigator", "coordinator", "monitor"}),
    "view_audit": frozenset({"admin", "monitor"}),
    "adjudicate": frozenset({"admin", "investigator"}),
    # eligibility: coordinators record attestations (consent, checklist judgements); only investigators
    # replace a computed result (an override, always with a reason)
    "attest": frozenset({"admin", "investigator", "coordinator"}),
    "override": frozenset({"admin", "investigator"}),
    # electronic signatures (dose-escalation decisions): investigators, re-entering the password
    "sign": frozenset({"admin", "investigator"}),
}

#: Columns that identify a person or pin events to calendar dates: hidden from statisticians.
IDENTIFYING_COLUMNS = ("reference_date", "datetime", "site")

IDLE_TIMEOUT_S = 30 * 60


def allowed(role: str, permission: str) -> bool:
    return role in PERMISSIONS.get(permission, frozenset())


@dataclass
class Session:
    username: str
    full_name: str
    role: str
    csrf: str
    last_seen: float = field(default_factory=time.monotonic)


class SessionStore:
    """Server-side sessions keyed by an unguessable token."""

    def __init__(self, idle_timeout_s: float = IDLE_TIMEOUT_S):
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.idle_timeout_s = idle_timeout_s

    def create(self, username: str, full_name: str, role: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        s = Session(username, full_name, role, secrets.token_urlsafe(32))
        with self._lock:
            self._sessions[token] = s
        return token, s

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            s = self._sessions.get(token)
            if s is None:
                return None
            now = time.monotonic()
            if now - s.last_seen > self.idle_timeout_s:
                del self._sessions[token]
                return None
            s.last_seen = now
            return s

    def drop(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)


def csrf_ok(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


class LoginLimiter:
    """At most ``max_failures`` failed logins per user name and per client address in ``window_s``."""

    def __init__(self, max_failures: int = 5, window_s: float = 300.0):
        self.max_failures = max_failures
        self.window_s = window_s
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def blocked(self, username: str, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            return any(len(self._recent(k, now)) >= self.max_failures for k in (f"u:{username}", f"c:{client}"))

    def failed(self, username: str, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            for k in (f"u:{username}", f"c:{client}"):
                self._recent(k, now).append(now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._fails.pop(f"u:{username}", None)


__all__ = ["ROLES", "PERMISSIONS", "IDENTIFYING_COLUMNS", "allowed", "Session", "SessionStore", "csrf_ok", "LoginLimiter"]
