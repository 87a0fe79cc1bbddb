"""A fake GitHub REST API on loopback, for the action's tests: issue comments (list with
pagination, create, update) and the pull requests of a branch, recorded request by request."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class FakeGitHub:
    def __init__(self, repository: str = "octo/models", read_only: bool = False) -> None:
        self.repository = repository
        self.read_only = read_only  # a fork's token: reads work, writes are 403
        self.comments: dict[int, list[dict]] = {}
        self.pulls: list[dict] = []
        self.requests: list[tuple[str, str, dict | None, str]] = []  # method, path, body, Authorization
        self._next_id = 1000
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                fake.requests.append((method, self.path, body, self.headers.get("Authorization", "")))
                status, answer = fake.route(method, self.path, body)
                self._answer(status, answer)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PATCH(self):
                self._handle("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "FakeGitHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_comment(self, number: int, body: str) -> int:
        self._next_id += 1
        self.comments.setdefault(number, []).append({"id": self._next_id, "body": body})
        return self._next_id

    def route(self, method: str, path: str, body):
        url = urlparse(path)
        query = parse_qs(url.query)
        repo = f"/repos/{self.repository}"
        listing = re.fullmatch(rf"{repo}/issues/(\d+)/comments", url.path)
        if listing and method == "GET":
            per_page, page = int(query.get("per_page", ["30"])[0]), int(query.get("page", ["1"])[0])
            comments = self.comments.get(int(listing.group(1)), [])
            return 200, comments[(page - 1) * per_page : page * per_page]
        if method in ("POST", "PATCH") and self.read_only:
            return 403, {"message": "Resource not accessible by integration"}
        if listing and method == "POST":
            comment_id = self.add_comment(int(listing.group(1)), body["body"])
            return 201, {"id": comment_id, "body": body["body"]}
        edit = re.fullmatch(rf"{repo}/issues/comments/(\d+)", url.path)
        if edit and method == "PATCH":
            for comments in self.comments.values():
                for comment in comments:
                    if comment["id"] == int(edit.group(1)):
                        comment["body"] = body["body"]
                        return 200, comment
            return 404, {"message": "Not Found"}
        if url.path == f"{repo}/pulls" and method == "GET":
            head = query.get("head", [""])[0]
            return 200, [pull for pull in self.pulls if pull["head"]["label"] == head]
        return 404, {"message": "Not Found"}

    def writes(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path, _, _ in self.requests if method != "GET"]
