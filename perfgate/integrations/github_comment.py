"""One pull-request comment per comparison, updated in place on every push.

The comment starts with a hidden marker that names the comparison
(``<!-- perfgate-comment: 1f2e3d4c5b6a7980 -->``, a hash of what is compared, where), so
two perfgate steps keep two comments and a new push edits the old one instead of adding
another. The GitHub REST API is called with the standard library only; ``GITHUB_API_URL``
says where it is (tests point it at a server on loopback).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

MARKER = re.compile(r"<!-- perfgate-comment: ([0-9a-f]{16}) -->")
TIMEOUT_S = 30


def marker_for(parts: Sequence[object]) -> str:
    """The hidden line naming a comparison: a hash, so no name of the user's lands in HTML."""
    digest = hashlib.sha256(json.dumps([str(part) for part in parts]).encode()).hexdigest()[:16]
    return f"<!-- perfgate-comment: {digest} -->"


class GitHubError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status

    @property
    def forbidden(self) -> bool:
        """A token that may not write here: a fork's pull request gets a read-only one; a
        workflow without ``pull-requests: write`` permission gets 403 too."""
        return self.status in (401, 403, 404)


@dataclass(frozen=True)
class GitHub:
    api_url: str
    repository: str  # owner/name
    token: str

    @classmethod
    def from_environment(cls, token: str, environ: Mapping[str, str] = os.environ) -> "GitHub":
        return cls(environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/"), environ.get("GITHUB_REPOSITORY", ""), token)

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.api_url}{path}", data=data, method=method)
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", "2022-11-28")
        request.add_header("User-Agent", "perfgate-action")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise GitHubError(exc.code, _api_message(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise GitHubError(0, f"cannot reach {self.api_url}: {getattr(exc, 'reason', exc)}") from None
        return json.loads(text) if text else None

    def upsert_comment(self, number: int, body: str) -> tuple[str, int]:
        """Update the comment on issue/PR ``number`` that carries ``body``'s marker, or create
        one; returns ("updated" or "created", the comment's id)."""
        found = MARKER.search(body)
        if found is None:
            raise ValueError("the comment body has no perfgate marker")
        existing = self.find_comment(number, found.group(0))
        if existing is not None:
            self.request("PATCH", f"/repos/{self.repository}/issues/comments/{existing}", {"body": body})
            return "updated", existing
        created = self.request("POST", f"/repos/{self.repository}/issues/{number}/comments", {"body": body})
        return "created", int(created["id"])

    def find_comment(self, number: int, marker: str) -> int | None:
        page = 1
        while True:
            comments = self.request("GET", f"/repos/{self.repository}/issues/{number}/comments?per_page=100&page={page}")
            for comment in comments or ():
                if marker in (comment.get("body") or ""):
                    return int(comment["id"])
            if not comments or len(comments) < 100:
                return None
            page += 1

    def pull_request_of_run(self, run: Mapping[str, Any]) -> int | None:
        """The open pull request whose head is a ``workflow_run`` event's commit. Found by
        the head's owner, branch and SHA, never from the run's artifacts, which the fork wrote."""
        owner = ((run.get("head_repository") or {}).get("owner") or {}).get("login")
        branch, sha = run.get("head_branch"), run.get("head_sha")
        if not (owner and branch and sha):
            return None
        query = urllib.parse.urlencode({"state": "open", "head": f"{owner}:{branch}", "per_page": 100})
        for pull in self.request("GET", f"/repos/{self.repository}/pulls?{query}") or ():
            if (pull.get("head") or {}).get("sha") == sha:
                return int(pull["number"])
        return None


def _api_message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read().decode()).get("message") or exc.reason)
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)


def pull_request_number(event: Mapping[str, Any]) -> int | None:
    """The pull request a ``pull_request`` / ``pull_request_target`` event is about (None for a push)."""
    pull = event.get("pull_request")
    if isinstance(pull, Mapping) and isinstance(pull.get("number"), int):
        return pull["number"]
    return None


def read_event(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    path = environ.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as file:
            event = json.load(file)
    except (OSError, ValueError):
        return {}
    return event if isinstance(event, dict) else {}
