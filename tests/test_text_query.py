"""Find pictures by words (issue 12): the search by hand (explorer.core.cross_search), the
text-query child's protocol and errors (precompute/text_query.py), its client
(explorer/text_query_client.py) and `explorer search-pictures`; then, on a small demo
trained and built here (`precompute train crossmodal`, `precompute build --crossmodal`),
that the child embeds a title exactly as the build did and that typed words find the
pictures they describe."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from explorer.core.bundle import Bundle
from explorer.core.cross_search import cross_modalities, search_bundle, search_pictures
from explorer.text_query_client import TextQueryClient, TextQueryError
from precompute.text_query import MAX_LINE, MAX_TEXT, serve

CHILD = [sys.executable, "-m", "precompute", "text-query"]


# -- the search, by hand ----------------------------------------------------------------
def test_search_ranks_pictures_by_cosine_ties_by_lower_row():
    pictures = np.array([[1, 0], [0, 1], [0.6, 0.8], [0.8, 0.6], [1, 0], [0.6, 0.8]],
                        np.float32)
    text = np.array([0.8, 0.6], np.float32)
    # cosines: 0.8, 0.6, 0.96, 1.0, 0.8, 0.96
    hits = search_pictures(text, pictures, np.arange(6), top=4)
    assert hits.rows.tolist() == [3, 2, 5, 0]  # 2 and 5 tie: the lower row first
    np.testing.assert_allclose(hits.scores, [1.0, 0.96, 0.96, 0.8], atol=1e-6)
    assert hits.rows.dtype == np.int64 and hits.scores.dtype == np.float32
    # a tie across the cut keeps the lower row (0 before 4), whatever the blocks
    for block in (1, 2, 4, 100):
        got = search_pictures(text, pictures, np.arange(6), top=4, block=block)
        assert got.rows.tolist() == [3, 2, 5, 0]
    # only the scope's rows, never one without a picture
    present = np.array([True, True, False, True, True, True])
    hits = search_pictures(text, pictures, np.array([0, 2, 4, 5]), present, top=10)
    assert hits.rows.tolist() == [5, 0, 4]
    # float16 pictures (as a bundle may store them) score as float32
    hits = search_pictures(text, pictures.astype(np.float16), np.arange(6), top=1)
    assert hits.rows.tolist() == [3]


def test_search_matches_a_brute_force_sort():
    rng = np.random.default_rng(4)
    pictures = rng.normal(size=(500, 16)).astype(np.float32)
    pictures = np.round(pictures / np.linalg.norm(pictures, axis=1, keepdims=True), 2)
    text = pictures[7] / np.linalg.norm(pictures[7])
    rows = np.sort(rng.choice(500, 300, replace=False))
    scores = pictures[rows] @ text.astype(np.float32)
    expected = rows[np.lexsort((rows, -scores))][:25]
    got = search_pictures(text, pictures, rows, top=25, block=64)
    assert got.rows.tolist() == expected.tolist()


def test_search_refuses_shapes_and_values():
    pictures = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match="shape"):
        search_pictures(np.ones(2), pictures, np.arange(3))
    with pytest.raises(ValueError, match="finite"):
        search_pictures(np.array([np.nan, 0, 0]), pictures, np.arange(3))
    with pytest.raises(ValueError, match="top"):
        search_pictures(np.ones(3), pictures, np.arange(3), top=0)


# -- the child's protocol, in process ---------------------------------------------------
def _serve(lines: list[bytes], encode=None) -> list[dict]:
    def unit(texts):
        return np.array([[0.6, 0.8]] * len(texts), np.float32)

    out = io.StringIO()
    serve(io.BytesIO(b"".join(lines)), out, encode or unit, 2)
    replies = [json.loads(line) for line in out.getvalue().splitlines()]
    assert all("\n" not in r.get("error", "") for r in replies)
    return replies


def test_serve_answers_each_line_and_refuses_bad_ones():
    lines = [b'{"id": 1, "text": "botol minum hijau"}\n',
             b"not json\n",
             b"[1, 2]\n",
             b'{"text": "no id"}\n',
             b'{"id": true, "text": "a bool is no id"}\n',
             b'{"id": 2, "text": 5}\n',
             b'{"id": 3, "text": "   "}\n',
             b'{"id": 4, "text": "' + b"x" * (MAX_TEXT + 1) + b'"}\n',
             b'{"id": 5, "text": "\xff"}\n',
             b"[" * 50_000 + b"\n",
             b"\n",  # blank lines are skipped
             b'{"id": 6, "text": "' + b"y" * (MAX_LINE + 10) + b'"}\n',
             b'{"id": 7, "text": "sepatu merah"}']  # the last line needs no newline
    replies = _serve(lines)
    assert replies[0] == {"id": 1, "vector": [0.6000000238418579, 0.800000011920929]}
    assert [r["id"] for r in replies] == [1, None, None, None, None, 2, 3, 4, None, None,
                                          None, 7]
    errors = [r.get("error", "") for r in replies]
    assert "not JSON" in errors[1] and "JSON object" in errors[2]
    assert errors[3] == errors[4] == '"id" must be an integer'
    assert "string" in errors[5] and "empty" in errors[6]
    assert f"at most {MAX_TEXT}" in errors[7] and "UTF-8" in errors[8]
    assert "nested" in errors[9] and f"longer than {MAX_LINE}" in errors[10]
    assert "vector" in replies[11]


def test_serve_keeps_going_when_the_model_fails(capsys):
    calls = []

    def encode(texts):
        calls.append(texts)
        if texts == ["boom"]:
            raise RuntimeError("CUDA error: an illegal memory access\nsecond line")
        if texts == ["nothing"]:
            return np.zeros((1, 2), np.float32)  # no direction: not a unit vector
        return np.array([[1.0, 0.0]], np.float32)

    replies = _serve([b'{"id": 1, "text": "boom"}\n', b'{"id": 2, "text": "nothing"}\n',
                      b'{"id": 3, "text": "ok"}\n'], encode)
    assert replies[0] == {"id": 1, "error": "the text model failed: RuntimeError: CUDA "
                                            "error: an illegal memory access"}
    assert replies[1] == {"id": 2, "error": "the text model gives no direction for this text"}
    assert replies[2] == {"id": 3, "vector": [1.0, 0.0]}
    assert "Traceback" in capsys.readouterr().err  # the details: stderr, never stdout


# -- the child's start, as a process ----------------------------------------------------
def _child(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CHILD, *args], input=stdin, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("case", ["missing", "not_a_bundle", "no_cross", "unknown_name"])
def test_child_refuses_a_bundle_it_cannot_use_in_one_line(case, tiny_bundle, tmp_path):
    path = {"missing": tmp_path / "nowhere", "not_a_bundle": tmp_path,
            "no_cross": tiny_bundle, "unknown_name": tiny_bundle}[case]
    args = [str(path)] + (["--modality", "tfidf"] if case == "unknown_name" else [])
    res = _child(*args)
    assert res.returncode == 2
    lines = res.stdout.splitlines()
    assert len(lines) == 1 and set(json.loads(lines[0])) == {"error"}
    message = json.loads(lines[0])["error"]
    expected = {"missing": "not a folder", "not_a_bundle": "manifest",
                "no_cross": "no cross-modal modality", "unknown_name": "'tfidf' is not a "
                "cross-modal modality"}[case]
    assert expected in message, message
    assert "Traceback" not in res.stderr + res.stdout
    # the client says the same, in one line
    with pytest.raises(TextQueryError) as info:
        TextQueryClient(path, "tfidf" if case == "unknown_name" else None).start()
    assert str(info.value) == f"the text model did not start: {message}"


DYING_CHILD = """
import json, sys
print(json.dumps({"ready": True, "modality": "cx", "dim": 2}), flush=True)
sys.stdin.readline()
print("loading the tokenizer", file=sys.stderr)
print("RuntimeError: out of memory", file=sys.stderr, flush=True)
sys.exit(3)
"""


def test_client_reports_a_dying_child_with_its_last_words():
    """A peer that says ready, then dies on the first request (as a child killed by an
    out-of-memory error would): the call fails at once, in one line, with the child's
    last stderr line; the next call starts a new child."""
    client = TextQueryClient("unused", command=[sys.executable, "-c", DYING_CHILD])
    client.start()
    assert (client.modality, client.dim, client.running) == ("cx", 2, True)
    for _ in range(2):  # the second call starts it again and sees it die again
        with pytest.raises(TextQueryError) as info:
            client.embed("botol")
        assert str(info.value) == ("the text model stopped (exit status 3): RuntimeError: "
                                   "out of memory")
        assert not client.running
    client.close()
    client.close()  # twice is fine


def test_client_never_waits_past_its_timeouts(tmp_path):
    silent = [sys.executable, "-c", "import time; time.sleep(60)"]
    client = TextQueryClient("unused", command=silent, start_timeout=0.5)
    start = time.perf_counter()
    with pytest.raises(TextQueryError, match=r"took more than 0.5 s to load"):
        client.start()
    assert time.perf_counter() - start < 5 and client._proc is None  # killed, forgotten
    mute = ("import json, sys, time\n"
            "print(json.dumps({'ready': True, 'modality': 'cx', 'dim': 2}), flush=True)\n"
            "time.sleep(60)\n")
    client = TextQueryClient("unused", command=[sys.executable, "-c", mute],
                             query_timeout=0.5)
    with pytest.raises(TextQueryError, match=r"took more than 0.5 s to answer"):
        client.embed("botol")
    assert not client.running
    # close() from another thread ends a call that waits on the child at once
    client = TextQueryClient("unused", command=[sys.executable, "-c", mute])
    client.start()
    threading.Timer(0.3, client.close).start()
    start = time.perf_counter()
    with pytest.raises(TextQueryError, match="stopped"):
        client.embed("botol")
    assert time.perf_counter() - start < 5
