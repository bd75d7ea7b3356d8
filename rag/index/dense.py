"""Dense search over a version's vectors: exact (flat) or approximate (hnsw, ivf-pq), in FAISS's own index types.

The float32 vectors themselves live in each segment's `vectors.npy` and are the source of truth; `dense.faiss`
is a FAISS index over the first `rows` of them (FAISS's own file format). Rows appended since then (the tail,
at most TAIL_MAX_ROWS) are searched exactly beside it until a write folds them in with FAISS's `add`.
- flat: IndexFlatIP, exact; its results are FAISS's, unchanged.
- hnsw: IndexHNSWSQ (graph of 8-bit scalar-quantised vectors, M=64), candidates re-scored exactly.
- ivf-pq: IndexIVFPQ (inverted lists of product-quantised codes) inside an IndexRefine that re-ranks its
  candidates with 8-bit scalar-quantised vectors; the best of those re-scored exactly.
Exact re-scoring reads the candidates' float32 vectors with pread, so the full-precision vectors never have
to sit in memory. A source filter is FAISS's own ID selector on every kind (IVF probing more lists the narrower
it is); a filter narrow enough (EXACT_SELECTION_ROWS) is scored exactly from the vectors instead. Rows removed since
`dense.faiss` was written are skipped the same way, through a map from its ids to today's rows. Choosing,
building and updating the index is here; where files go is rag.index.store's business.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import ConfigError, IndexCorrupt
from rag.index.npyio import layout

KINDS = ("flat", "hnsw", "ivf-pq")
FILE = "dense.faiss"
VECTORS = "vectors.npy"
IDS = "dense-ids.npy"  # after removals: the row each id of dense.faiss holds now, -1 for a removed one
DROPPED_MAX_SHARE = 0.25  # past this share of removed ids a write builds dense.faiss anew
TAIL_MAX_ROWS = 20_000  # appended rows searched exactly beside the index before a write folds them in
EXACT_SELECTION_ROWS = 20_000  # a source filter allowing at most this many rows is searched exactly (hnsw, ivf-pq)
IVF_MIN_ROWS = 1_000  # fewer vectors than this make no useful IVF-PQ: flat instead
RETRAIN_GROWTH = 4  # an IVF-PQ index is retrained once it holds this many times the rows it was trained on
# On eval/bench_scale.py's near-duplicate clusters at 100k, M=32/efConstruction=64 reached recall@10 0.85 even at
# efSearch 2048; M=64/efConstruction=128 reaches 0.97 at efSearch 256 and 0.997 at 1024 (2.3x the build time).
HNSW = {"M": 64, "efConstruction": 128, "efSearch": 1024}
# IVF-PQ: k_factor x 2n PQ candidates re-ranked with 8-bit scalar-quantised vectors in memory (FAISS's IndexRefine),
# the best 2n of those re-scored exactly from disk. On eval/bench_scale.py's 1M chunks (200 SciFact queries, top 50):
# nprobe 32 / k_factor 10 gave recall@10 0.983 in 2.0 ms, 64 / 20 gave 0.995 in 3.4 ms, 16 / 5 0.954 in 1.6 ms.
IVF = {"nprobe": 32, "k_factor": 10}
BUILD_THREADS = 1  # OpenMP's spinning team made a 2-thread IVF-PQ build 3.5x slower on 2 busy cores than 1 thread
REBUILD_HINT = "rebuild it with `rag index --rebuild`"


@dataclass(frozen=True)
class Choice:
    """A `--dense-index` value: `kind`, used from `min_rows` chunks on (flat below)."""

    kind: str
    min_rows: int = 0

    @classmethod
    def parse(cls, value: str) -> Choice:
        """`flat`, `hnsw`, `ivf-pq`, or `hnsw@200000` (flat until the index holds 200,000 chunks, then hnsw)."""
        kind, _, rows = value.strip().partition("@")
        try:
            choice = cls(kind, int(rows.replace("_", "").replace(",", "")) if rows else 0)
        except ValueError:
            choice = None
        if choice is None or kind not in KINDS or choice.min_rows < 0:
            raise ConfigError(
                f"dense index must be one of {', '.join(KINDS)}, optionally with @CHUNKS "
                f"(e.g. hnsw@200000: flat below 200,000 chunks), got {value!r}"
            )
        return choice

    def kind_for(self, rows: int) -> str:
        if rows < self.min_rows or (self.kind == "ivf-pq" and rows < IVF_MIN_ROWS):
            return "flat"
        return self.kind

    def __str__(self) -> str:
        return f"{self.kind}@{self.min_rows}" if self.min_rows else self.kind


@contextlib.contextmanager
def build_threads() -> Iterator[None]:
    """FAISS builds on BUILD_THREADS threads, whatever the process set for searching."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(BUILD_THREADS)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


# -- building -----------------------------------------------------------------------------------------------


def _ivf_shape(rows: int, dim: int) -> dict:
    """nlist about sqrt(rows) (a power of two, at least 39 rows per list), 8 dims per PQ code byte."""
    nlist = 1 << max(0, round(math.log2(max(math.sqrt(rows), 1))))
    nlist = max(1, min(nlist, rows // 39, 65536))
    m = max(d for d in range(1, max(1, dim // 8) + 1) if dim % d == 0)
    nbits = 8 if rows >= 4096 else max(1, int(math.log2(rows)) - 4)
    return {
        "nlist": nlist,
        "m": m,
        "nbits": nbits,
        "nprobe": min(nlist, IVF["nprobe"]),
        "k_factor": IVF["k_factor"],
        "refine": "SQ8",
    }


def build(kind: str, vectors: np.ndarray, like=None, like_params: dict | None = None):
    """A FAISS index of `kind` over `vectors` (rows 0..n-1) and the parameters to record.

    `like`: an IVF-PQ index of the previous version whose training may be reused (rows grew less than
    RETRAIN_GROWTH-fold since it was trained): only the vectors are re-added.
    """
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    rows, dim = vectors.shape
    with build_threads():
        if kind == "flat":
            index, params = faiss.IndexFlatIP(dim), {}
        elif kind == "hnsw":
            index = faiss.index_factory(dim, f"HNSW{HNSW['M']},SQ8", faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW["efConstruction"]
            index.train(_sample(vectors, 100_000))
            params = {**HNSW, "storage": "SQ8", "trained_rows": rows}
        elif kind == "ivf-pq":
            reusable = like is not None and like_params and like.d == dim
            if reusable and rows <= RETRAIN_GROWTH * like_params["trained_rows"]:
                index, params = faiss.clone_index(like), dict(like_params)
                index.reset()  # keeps the coarse quantizer and the PQ codebooks
            else:
                params = {**_ivf_shape(rows, dim), "trained_rows": rows}
                ivf = faiss.IndexIVFPQ(
                    faiss.IndexFlatIP(dim),
                    dim,
                    params["nlist"],
                    params["m"],
                    params["nbits"],
                    faiss.METRIC_INNER_PRODUCT,
                )
                ivf.cp.min_points_per_centroid = ivf.pq.cp.min_points_per_centroid = 1  # no warnings on small sets
                sq8 = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
                index = faiss.IndexRefine(ivf, sq8)
                index.own_fields = True  # the C++ index owns both parts from here
                ivf.this.disown()
                sq8.this.disown()
                index.train(_sample(vectors, max(params["nlist"] * 40, (1 << params["nbits"]) * 64)))
        else:
            raise ConfigError(f"unknown dense index {kind!r}")
        for start in range(0, rows, 100_000):
            index.add(vectors[start : start + 100_000])
    return index, params


def extend(index, vectors: np.ndarray) -> None:
    """Add rows at the end (FAISS's `add`: every kind here takes it without a rebuild)."""
    with build_threads():
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))


def _sample(vectors: np.ndarray, n: int) -> np.ndarray:
    if len(vectors) <= n:
        return vectors
    rows = np.sort(np.random.default_rng(0).choice(len(vectors), n, replace=False))
    return vectors[rows]


def write(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def read(path: Path):
    with open(path, "rb") as f:
        return read_file(f, path)


def read_file(f, path: Path):
    """Read a FAISS index from an open file (held open since load, so a version pruned meanwhile still reads)."""
    import faiss

    try:
        return faiss.read_index(faiss.PyCallbackIOReader(f.read))
    except RuntimeError as exc:
        raise IndexCorrupt(f"cannot read {path} ({str(exc).splitlines()[0]}): {REBUILD_HINT}") from None


# -- the vectors on disk -----------------------------------------------------------------------------------


def filter_vectors(source: Path, path: Path, drop: np.ndarray, block: int = 16_384) -> None:
    """Write to `path` the vectors of `source` without its (sorted) rows `drop`, a block at a time with plain reads
    and writes (nothing mapped: the process holds one block, however large the file)."""
    (rows, dim), dtype, offset = layout(source)
    keep = np.ones(rows, dtype=bool)
    keep[drop] = False
    with open(source, "rb") as old, open(path, "wb") as new:
        np.lib.format.write_array_header_1_0(
            new, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (int(keep.sum()), dim)}
        )
        old.seek(offset)
        for start in range(0, rows, block):
            part = np.frombuffer(old.read(min(block, rows - start) * dim * 4), dtype=np.float32).reshape(-1, dim)
            new.write(part[keep[start : start + block]].tobytes())


class VectorFiles:
    """The float32 vectors of a version, one .npy per segment: single rows by pread, ranges by mapping."""

    def __init__(self, files: Sequence[tuple[Path, int]], dim: int):
        self.dim = dim
        self.files, self.starts, self.offsets, self.fds = [], [], [], []
        first = 0
        for path, rows in files:
            shape, dtype, offset = layout(path)
            if shape != (rows, dim) or dtype != np.float32:
                raise IndexCorrupt(
                    f"{path} holds {shape} {dtype} vectors, the index says ({rows}, {dim}) float32: {REBUILD_HINT}"
                )
            self.files.append((path, rows))
            self.starts.append(first)
            self.offsets.append(offset)
            self.fds.append(open(path, "rb", buffering=0))
            first += rows
        self.ntotal = first

    def close(self) -> None:
        for f in self.fds:
            f.close()
        self.fds = []

    def rows(self, rows: Sequence[int]) -> np.ndarray:
        """The vectors of `rows` (any order), read with pread, one read per stretch of consecutive rows: the
        process maps nothing (RSS stays flat)."""
        rows = np.asarray(rows, dtype=np.int64)
        size = 4 * self.dim
        if not len(rows):
            return np.zeros((0, self.dim), dtype=np.float32)
        if rows.min() < 0 or rows.max() >= self.ntotal:
            raise IndexError(f"vector rows out of range 0..{self.ntotal - 1}")
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        which = np.searchsorted(self.starts, ordered, side="right") - 1
        cuts = np.flatnonzero((np.diff(ordered) != 1) | (np.diff(which) != 0)) + 1
        firsts, lasts = np.concatenate([[0], cuts]).tolist(), np.concatenate([cuts, [len(rows)]]).tolist()
        fds = [f.fileno() for f in self.fds]
        buf = bytearray(len(rows) * size)
        view = memoryview(buf)
        for a, b in zip(firsts, lasts, strict=True):
            f = int(which[a])
            offset = self.offsets[f] + (int(ordered[a]) - self.starts[f]) * size
            if os.preadv(fds[f], [view[a * size : b * size]], offset) != (b - a) * size:
                raise IndexCorrupt(f"{self.files[f][0]} is truncated: {REBUILD_HINT}")
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        out[order] = np.frombuffer(buf, dtype=np.float32).reshape(len(rows), self.dim)
        return out

    def range(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1 as one array (a copy; the mapping is dropped at once)."""
        stop = min(stop, self.ntotal)
        parts = []
        for (path, rows), first in zip(self.files, self.starts, strict=True):
            lo, hi = max(start - first, 0), min(stop - first, rows)
            if lo < hi:
                mapped = np.load(path, mmap_mode="r", allow_pickle=False)
                parts.append(np.array(mapped[lo:hi]))
                del mapped
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)


# -- searching ------------------------------------------------------------------------------------------------


class DenseIndex:
    """FAISS-shaped search (`search`, `ntotal`, `d`, `reconstruct_n`) over the main index plus the exact tail.

    `ids` (after removals) maps each id of `main` to the row it holds now, -1 for a removed one; the rows it
    covers are still 0..main_rows-1, in id order, so the tail stays the rows after them."""

    def __init__(
        self, kind: str, main, vectors: VectorFiles, params: dict | None = None, ids: np.ndarray | None = None
    ):
        import faiss

        self.kind, self.main, self.vectors, self.params = kind, main, vectors, params or {}
        self.d = vectors.dim
        self.ntotal = vectors.ntotal
        self._row_of = ids  # id -> row (None: the same number)
        self._id_of = None if ids is None else np.flatnonzero(ids >= 0)  # row -> id
        self._removed = None  # a selector that skips the removed ids
        if ids is not None:
            if len(ids) != main.ntotal or not np.array_equal(ids[self._id_of], np.arange(len(self._id_of))):
                raise IndexCorrupt(f"the id map of a dense index of {main.ntotal} rows is not one: {REBUILD_HINT}")
            inner = faiss.IDSelectorBatch(np.flatnonzero(ids < 0))
            self._removed = faiss.IDSelectorNot(inner)
            self._removed._inner = inner  # the SWIG object does not own it: keep it alive with the outer one
        self.main_rows = main.ntotal if ids is None else len(self._id_of)
        if main.d != self.d or self.main_rows > self.ntotal:
            raise IndexCorrupt(
                f"dense index of {self.main_rows} × {main.d} for {self.ntotal} × {self.d} vectors: {REBUILD_HINT}"
            )
        self.tail = faiss.IndexFlatIP(self.d)
        if self.ntotal > self.main_rows:
            self.tail.add(vectors.range(self.main_rows, self.ntotal))

    def _params(self, selector=None, share: float = 1.0):
        """This kind's search parameters, skipping every id `selector` rejects. With a filter that allows `share`
        of the rows, IVF probes 1/share times the lists (at most all), so about as many allowed rows are scanned
        as without a filter."""
        import faiss

        if self.kind == "flat":
            params = faiss.SearchParameters() if selector is not None else None
        elif self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=int(self.params.get("efSearch", HNSW["efSearch"])))
        else:
            nprobe = int(self.params.get("nprobe", IVF["nprobe"]))
            nlist = int(self.params.get("nlist", nprobe))
            base = faiss.SearchParametersIVF(nprobe=min(nlist, math.ceil(nprobe / max(share, 1e-9))))
            params = faiss.IndexRefineSearchParameters(
                k_factor=float(self.params.get("k_factor", IVF["k_factor"])), base_index_params=base
            )
            params._base = base  # the SWIG object does not own it: keep it alive with the params
            if selector is not None:
                base.sel = selector
                params._selector = selector
            return params
        if selector is not None:
            params.sel = selector
            params._selector = selector
        return params

    def _candidates(self, query: np.ndarray, n: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The main index's best rows for one query (among `allowed`, sorted, when given), with exact scores."""
        import faiss

        if allowed is not None:
            allowed = allowed[allowed < self.main_rows]
        limit = self.main_rows if allowed is None else len(allowed)
        if limit == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        if allowed is not None and self.kind != "flat" and len(allowed) <= EXACT_SELECTION_ROWS:
            return self.vectors.rows(allowed) @ query[0], allowed  # a narrow filter: every allowed row, exactly
        if allowed is not None:
            selector = faiss.IDSelectorBatch(allowed if self._id_of is None else self._id_of[allowed])
        else:
            selector = self._removed
        if self.kind == "flat":
            scores, ids = self.main.search(query, min(n, limit), params=self._params(selector))
            keep = ids[0] >= 0
            return scores[0][keep], self._rows(ids[0][keep])
        params = self._params(selector, limit / self.main_rows)
        _, ids = self.main.search(query, min(max(2 * n, 100), limit), params=params)
        rows = self._rows(ids[0][ids[0] >= 0])
        if len(rows) < min(n, limit):  # the approximate search missed allowed rows (a wide but scattered filter)
            rows = allowed if allowed is not None else np.arange(self.main_rows)
        return self.vectors.rows(rows) @ query[0], rows

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        return ids if self._row_of is None else self._row_of[ids]

    def _tail(self, query: np.ndarray, n: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The best rows among those appended since the main index was written, exactly."""
        import faiss

        params = None
        if allowed is not None:
            local = allowed[allowed >= self.main_rows] - self.main_rows
            if not len(local):
                return np.zeros(0, np.float32), np.zeros(0, np.int64)
            params = faiss.SearchParameters()
            params.sel = selector = faiss.IDSelectorBatch(local)
            params._selector = selector
        scores, rows = self.tail.search(query, min(n, self.tail.ntotal), params=params)
        keep = rows[0] >= 0
        return scores[0][keep], rows[0][keep] + self.main_rows

    def search(self, queries: np.ndarray, n: int, selection=None) -> tuple[np.ndarray, np.ndarray]:
        """Top `n` rows of each query by inner product: (scores, rows), each (len(queries), <= n). With a
        `selection` (rag.answer.retrieval.Selection), only its rows."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if len(queries) != 1:  # one query at a time is what retrieval does; keep batches simple
            results = [self.search(q[None, :], n, selection) for q in queries]
            width = max((len(r[1][0]) for r in results), default=0)
            scores = np.full((len(queries), width), -np.inf, np.float32)
            rows = np.full((len(queries), width), -1, np.int64)
            for i, (s, r) in enumerate(results):
                scores[i, : len(s[0])], rows[i, : len(r[0])] = s[0], r[0]
            return scores, rows
        allowed = None if selection is None else np.asarray(selection.rows, dtype=np.int64)
        scores, rows = self._candidates(queries, n, allowed)
        if self.kind == "flat" and self.tail.ntotal == 0 and allowed is None:  # the exact index alone: FAISS's
            return scores[None, :n], rows[None, :n]  # order, untouched
        if self.tail.ntotal:
            tail_scores, tail_rows = self._tail(queries, n, allowed)
            scores = np.concatenate([scores, tail_scores])
            rows = np.concatenate([rows, tail_rows])
        order = np.lexsort((rows, -scores))[:n]  # by score, then row
        return scores[order][None, :].astype(np.float32), rows[order][None, :].astype(np.int64)

    def reconstruct_n(self, start: int, count: int) -> np.ndarray:
        """The exact float32 vectors of rows start..start+count-1 (from the vector files, whatever the kind)."""
        return self.vectors.range(start, start + count)


def renumbered(ids: np.ndarray | None, covered: int, drop_rows: np.ndarray) -> np.ndarray | None:
    """A dense index's map from its ids to rows once the sorted rows `drop_rows` are gone and the later rows moved
    up (-1: dropped). None stands for id i = row i over its `covered` rows, and stays None while none is dropped."""
    if not len(drop_rows) or (ids is None and drop_rows[0] >= covered):
        return ids
    ids = np.arange(covered, dtype=np.int64) if ids is None else ids.copy()
    live = ids >= 0
    rows = ids[live]
    before = np.searchsorted(drop_rows, rows)
    gone = drop_rows[np.minimum(before, len(drop_rows) - 1)] == rows
    ids[live] = np.where(gone, -1, rows - before)
    return ids
