"""Peak memory of the text embedding step (packaged MiniLM on the CPU): embeddings written
batch by batch into the bundle's memory-mapped .npy (`memmap`, what `precompute build`
does) against the former whole array held in memory and saved at the end (`ram`).

Each (n, sink) runs in its own process; a thread samples /proc/self/status every 10 ms
during the step. RssAnon is the process's own memory; RssFile includes the mapped
output file's pages (page cache, which the kernel may drop once written back).

    python bench/embed_memory.py --n 3000 12000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL_CSV = ROOT.parent / "shared" / "data" / "shopee" / "train.csv"


def status_kb() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


POOL = 3000  # every n draws from the same titles: the longest batch (the activation
# peak, first since batches are longest first) is then the same at every n


def titles(n: int) -> list[str]:
    """The first POOL titles of the real table (else random word titles), repeated."""
    if REAL_CSV.exists():
        import pandas as pd

        pool = pd.read_csv(REAL_CSV, usecols=["title"], nrows=POOL)["title"].tolist()
    else:
        rng = np.random.default_rng(0)
        words = [f"w{i}" for i in range(500)]
        pool = [" ".join(rng.choice(words, 8)) for _ in range(POOL)]
    return [pool[i % len(pool)] for i in range(n)]


def one(n: int, sink: str) -> dict:
    from explorer.core.bundle.writer import BundleWriter
    from precompute.modalities import Context, TextBuilder
    from precompute.text_encoders import encode_texts, load_text_encoder

    data = titles(n)
    load_text_encoder("all-MiniLM-L6-v2", device="cpu")  # warm: imports, weights read once
    peak = {"RssAnon": 0, "VmRSS": 0, "RssFile": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            s = status_kb()
            for k in peak:
                peak[k] = max(peak[k], s[k])
            time.sleep(0.01)

    with tempfile.TemporaryDirectory() as tmp, BundleWriter(Path(tmp) / "b.bundle") as w:
        before = status_kb()
        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        start = time.perf_counter()
        if sink == "memmap":
            ctx = Context(csv=Path("x.csv"), titles=data, images=None, phash=None, writer=w,
                          device="cpu", batch_size=128, progress=False, log=lambda _m: None)
            TextBuilder(name="minilm", kind="text", encoder="sentence-transformers",
                        model="all-MiniLM-L6-v2", spec="all-MiniLM-L6-v2").prepare(ctx)
        else:  # the former way: the whole array in memory, saved at the end
            enc = load_text_encoder("all-MiniLM-L6-v2", device="cpu")
            emb = encode_texts(enc, data, batch_size=128, device="cpu", progress=False).emb
            w.save_array("modalities/minilm/embeddings.npy", emb)
        seconds = time.perf_counter() - start
        done.set()
        thread.join()
    mb = 1 / 1024
    return {"n": n, "sink": sink, "seconds": round(seconds, 1),
            "anon_before_mb": round(before["RssAnon"] * mb, 1),
            "peak_anon_mb": round(peak["RssAnon"] * mb, 1),
            "peak_anon_growth_mb": round((peak["RssAnon"] - before["RssAnon"]) * mb, 1),
            "peak_file_mb": round(peak["RssFile"] * mb, 1),
            "peak_rss_mb": round(peak["VmRSS"] * mb, 1),
            "output_mb": round(n * 384 * 4 / 2**20, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[3000, 12000])
    p.add_argument("--sink", nargs="+", default=["memmap", "ram"])
    p.add_argument("--one", nargs=2, metavar=("N", "SINK"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1])))
        return
    cols = ("n", "sink", "seconds", "anon_before_mb", "peak_anon_mb", "peak_anon_growth_mb",
            "peak_file_mb", "peak_rss_mb", "output_mb")
    print(" ".join(f"{c:>19}" for c in cols))
    for sink in args.sink:
        for n in args.n:
            run = subprocess.run([sys.executable, __file__, "--one", str(n), sink],
                                 capture_output=True, text=True, check=True,
                                 env={**os.environ, "HF_HUB_OFFLINE": "1",
                                      "TOKENIZERS_PARALLELISM": "false"})
            row = json.loads(run.stdout.strip().splitlines()[-1])
            print(" ".join(f"{row[c]!s:>19}" for c in cols), flush=True)


if __name__ == "__main__":
    main()
