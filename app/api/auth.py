"""HTTP Basic auth for the API (`--api-auth user:pass[,user2:pass2]`, as A1111)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from fastapi import Depends, HTTPException
from fastapi.security import HTTPBasic, HTTPBasicCredentials


def parse_auth_pairs(text: str) -> dict[str, str]:
    """"u:p,u2:p2" -> {"u": "p", "u2": "p2"}. A password may hold ':' (the first one splits).
    ValueError naming the entry for an entry without a user or a password."""
    pairs: dict[str, str] = {}
    entries = [e.strip() for e in (text or "").split(",")]
    if not any(entries):
        raise ValueError("--api-auth: expected user:password[,user2:password2]")
    for number, entry in enumerate(entries, start=1):
        user, sep, password = entry.partition(":")
        if not sep or not user.strip() or not password:
            shown = f"{user.strip()}:..." if sep else entry
            raise ValueError(f"--api-auth entry {number} ({shown!r}): expected user:password with both parts non-empty")
        pairs[user.strip()] = password
    return pairs


def basic_auth(credentials: Mapping[str, str]):
    """A FastAPI dependency that lets a request through only with one of `credentials` (user -> password).

    Every user is compared, in constant time, so the response time does not tell which users exist."""
    users = {u.encode(): p.encode() for u, p in credentials.items()}
    scheme = HTTPBasic(auto_error=False, realm="Easel API")

    def check(given: HTTPBasicCredentials | None = Depends(scheme)) -> str:  # noqa: B008 (FastAPI idiom)
        if given is not None:
            user, password = given.username.encode(), given.password.encode()
            matched = False
            for known_user, known_password in users.items():
                same_user = secrets.compare_digest(user, known_user)
                same_password = secrets.compare_digest(password, known_password)
                matched |= same_user and same_password
            if matched:
                return given.username
        raise HTTPException(status_code=401, detail="authentication required: wrong or missing user:password",
                            headers={"WWW-Authenticate": 'Basic realm="Easel API"'})

    return check
