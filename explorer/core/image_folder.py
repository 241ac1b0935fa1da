"""The dataset's original pictures, when the analyst has them beside the bundle.

A bundle carries 192 px thumbnails so that it opens anywhere; the pair view shows the
original JPEGs instead when the analyst points the app at the image folder the bundle was
built from. The file of a posting is its `image` column joined under that folder. A bundle
may come from someone else, so a name that would leave the folder (an absolute path,
`..`, a symlink pointing outside) is never opened.
"""

from __future__ import annotations

from pathlib import Path

from explorer.core.bundle import Bundle

__all__ = ["ImageFolder"]

SAMPLE = 50  # postings looked up to tell whether a folder holds the bundle's pictures


class ImageFolder:
    """Posting row -> original image file under `root` (None when there is none)."""

    def __init__(self, root: str | Path, bundle: Bundle) -> None:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise ValueError(f"{root}: not a folder")
        self.root = root.resolve()
        self._names = bundle.items["image"]

    def path(self, row: int) -> Path | None:
        """The file of the posting at global `row`, when it lies inside the folder."""
        name = self._names.iloc[row]
        if not isinstance(name, str) or not name or "\x00" in name:
            return None
        try:
            path = (self.root / name).resolve()
        except (OSError, RuntimeError):  # a symlink loop, a name the OS refuses
            return None
        if self.root not in path.parents or not path.is_file():
            return None
        return path

    def found(self, sample: int = SAMPLE) -> tuple[int, int]:
        """(files found, names looked up) over up to `sample` postings spread over the
        bundle: whether this is the bundle's image folder at all."""
        n = len(self._names)
        rows = sorted({int(i * n / sample) for i in range(min(sample, n))})
        return sum(self.path(r) is not None for r in rows), len(rows)
