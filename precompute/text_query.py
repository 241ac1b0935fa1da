"""`precompute text-query BUNDLE [--modality NAME] [--device DEV]`: the app's "find
pictures by words" child process.

It rebuilds the text tower a bundle's cross-modal modality recorded (the very code that
embedded the bundle's titles, precompute.crossmodal_towers.text_tower_from_record, so
its rows equal the bundle's) and answers on its standard streams, one JSON object a line:

    stdout, first:   {"ready": true, "modality": NAME, "dim": D}
                     or {"error": "one line"} and exit status 2
    stdin:           {"id": N, "text": "..."}            (N: an integer)
    stdout:          {"id": N, "vector": [D floats]}     a unit vector
                     or {"id": N, "error": "one line"}   (id null when the line had none)

until stdin ends (exit status 0). Input is checked (one JSON object, an integer id, a
non-empty string of at most MAX_TEXT characters, a line of at most MAX_LINE bytes); a
failure answers that request and the child goes on. Logs and tracebacks go to stderr,
never to stdout: the protocol stream carries nothing else (sys.stdout is stderr while it
runs, so a library's print cannot corrupt it). The bundle is opened without checking its
arrays; only what this needs is checked: the modality and its text head."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import IO, Any

import numpy as np

from explorer.core.bundle import Bundle, BundleError
from precompute.errors import InputError, one_line

MAX_TEXT = 2000      # characters of one query text (a title is at most a few hundred)
MAX_LINE = 1 << 16   # bytes of one request line
Encode = Callable[[Sequence[str]], np.ndarray]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `text-query` subcommand (precompute.cli registers it)."""
    q = sub.add_parser("text-query", help="embed typed texts with a bundle's cross-modal "
                       "text tower: JSON lines on stdin and stdout (the app's child process)")
    q.add_argument("bundle", help="bundle folder with a cross-modal modality")
    q.add_argument("--modality", metavar="NAME", help="the cross-modal modality (default: "
                   "the bundle's only one)")
    q.add_argument("--device", help="cuda, cuda:1 or cpu (default: cuda when available)")


def pick_modality(bundle: Bundle, name: str | None) -> str:
    """`name`, or the bundle's only cross-modal modality; InputError otherwise."""
    cross = bundle.manifest.cross_modalities
    if name is not None:
        if name not in cross:
            have = ", ".join(cross) or "none"
            raise InputError(f"{name!r} is not a cross-modal modality of this bundle "
                             f"(cross-modal: {have})")
        return name
    if not cross:
        raise InputError("this bundle has no cross-modal modality (precompute build "
                         "--crossmodal NAME:CKPT adds one)")
    if len(cross) > 1:
        raise InputError(f"this bundle has {len(cross)} cross-modal modalities "
                         f"({', '.join(cross)}): choose one with --modality")
    return cross[0]


def load_tower(path: str, name: str | None, device: str | None) -> tuple[str, int, Encode]:
    """(modality, dim, texts -> unit rows) of the bundle at `path`; InputError or
    BundleError (one line) when the bundle, the modality or its text head is unusable."""
    from precompute.crossmodal_towers import text_tower_from_record

    bundle = Bundle.open(path, validate=False)  # manifest and items; arrays checked below
    mod = bundle.manifest.modality(pick_modality(bundle, name))
    towers = mod.params.get("towers")
    if not isinstance(towers, dict):
        raise InputError(f"{mod.name}: the bundle does not record its towers (params.towers)")
    arrays = bundle.tower_arrays(mod.name)
    head = arrays.get("text_proj")  # the one array the text side reads (its record's kind)
    if head is not None:  # its shape before its values: a huge file is not read through
        if head.ndim != 2 or head.shape[0] != mod.dim or head.dtype.kind != "f":
            raise InputError(f"{mod.name}: its text head is {head.dtype} {head.shape}, not "
                             f"floats of {mod.dim} rows")
        if not np.isfinite(head).all():
            raise InputError(f"{mod.name}: its text head has values that are not finite")
    encode = text_tower_from_record(towers, arrays, device=device)
    return mod.name, mod.dim, encode


class BadRequest(ValueError):
    """A request line that cannot be answered; `rid` its id when it had a usable one."""

    def __init__(self, message: str, rid: int | None = None) -> None:
        super().__init__(message)
        self.rid = rid


def parse_request(line: bytes) -> tuple[int, str]:
    """(id, text) of one request line; BadRequest (one line) when it is not a valid one."""
    try:
        req = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("the line is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"not JSON ({exc.msg})") from None
    except (ValueError, RecursionError):  # an integer of 5,000 digits, [[[[... nested
        raise BadRequest("JSON too deeply nested or with too large a number") from None
    if not isinstance(req, dict):
        raise BadRequest('a request is a JSON object {"id": N, "text": "..."}')
    rid = req.get("id")
    if type(rid) is not int:  # bool is an int subclass: refused too
        raise BadRequest('"id" must be an integer')
    text = req.get("text")
    if not isinstance(text, str):
        raise BadRequest('"text" must be a string', rid)
    if not text.strip():
        raise BadRequest("the text is empty", rid)
    if len(text) > MAX_TEXT:
        raise BadRequest(f"the text has {len(text)} characters; at most {MAX_TEXT}", rid)
    return rid, text


def answer(line: bytes, encode: Encode, dim: int) -> dict[str, Any]:
    """The response to one request line (never raises for a bad request or a failed
    encoding: the error is the answer, its traceback on stderr)."""
    try:
        rid, text = parse_request(line)
    except BadRequest as exc:
        return {"id": exc.rid, "error": str(exc)}
    try:
        vec = np.asarray(encode([text]), np.float32).reshape(-1)
    except Exception as exc:  # the model failed on this text: say so, keep serving
        traceback.print_exc(file=sys.stderr)
        return {"id": rid, "error": f"the text model failed: {one_line(exc)}"}
    norm = float(np.linalg.norm(vec)) if np.isfinite(vec).all() else math.nan
    if vec.shape != (dim,) or not abs(norm - 1.0) < 1e-3:
        return {"id": rid, "error": "the text model gives no direction for this text"}
    return {"id": rid, "vector": vec.astype(np.float64).tolist()}  # float32 -> exact


def _lines(stream: IO[bytes]):
    """Request lines without their newline; an overlong line yields None (its rest is
    read and dropped, so the next line starts fresh)."""
    while True:
        line = stream.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            while (rest := stream.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                pass
            yield None
        elif line.strip():
            yield line.rstrip(b"\r\n")


def serve(stdin: IO[bytes], out: IO[str], encode: Encode, dim: int) -> None:
    """Answer every request line of `stdin` on `out` until stdin ends."""
    for line in _lines(stdin):
        reply = ({"id": None, "error": f"the line is longer than {MAX_LINE} bytes"}
                 if line is None else answer(line, encode, dim))
        out.write(json.dumps(reply, allow_nan=False) + "\n")
        out.flush()


def _say(out: IO[str], obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj) + "\n")
    out.flush()


def run(args: argparse.Namespace) -> int:
    """The subcommand (see the module docstring); exit status 0, or 2 when no tower
    could be made."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    out, sys.stdout = sys.stdout, sys.stderr  # the protocol stream is ours alone
    try:
        try:
            name, dim, encode = load_tower(args.bundle, args.modality, args.device)
        except (InputError, BundleError) as exc:
            _say(out, {"error": str(exc)})
            print(f"precompute text-query: error: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # an encoder that cannot load: one line, details on stderr
            traceback.print_exc(file=sys.stderr)
            _say(out, {"error": f"the text model could not be loaded: {one_line(exc)}"})
            return 2
        print(f"precompute text-query: {name} ready ({dim} dimensions)", file=sys.stderr)
        _say(out, {"ready": True, "modality": name, "dim": dim})
        serve(sys.stdin.buffer, out, encode, dim)
        return 0
    except (BrokenPipeError, KeyboardInterrupt):  # the app went away: nothing to tell
        return 0
    finally:
        sys.stdout = out
