"""The bare baseline app: one JSON endpoint at JCT's enqueue path that reads the body and
answers ``{"ok": true}``, nothing else (no database, no broker, no logging)."""

from __future__ import annotations

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

app = Flask(__name__)


@app.post("/enqueue")
def enqueue() -> ResponseReturnValue:
    request.get_json()
    return jsonify(ok=True), 202
