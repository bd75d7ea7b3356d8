"""The `rag` command line: a thin adapter that reads settings, calls the library, prints results.

Heavy modules (torch, faiss, llama_cpp) are imported inside commands so `rag --help` stays instant.
Errors from the library become a one-line message and a non-zero exit code here, nowhere else.
Options that are settings show their `RAG_*` variable and default in --help; the values themselves come from
`Settings.from_env` (validated, naming the variable on error) with flags given on the command line on top.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from typer.core import TyperGroup

from rag.errors import RagError
from rag.settings import BACKENDS, MODES, Settings

if TYPE_CHECKING:
    from rag.types import Citation


class _Commands(TyperGroup):
    """Notes whether --help was asked for, so a bad environment does not stand in the way of reading help."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        ctx.meta["rag.help"] = "--help" in args
        return super().parse_args(ctx, args)


app = typer.Typer(
    help="Cited-answer question answering over your documents: index files, search them, ask questions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Commands,
    rich_markup_mode=None,  # plain help: flags read as flags, and no [bracketed] text is taken for markup
)


def setting(field: str, *flags: str, help: str, shown_default: str | None = None, **kw: Any) -> Any:
    """An option that sets `Settings.<field>`: --help shows its RAG_* variable and its default."""
    return typer.Option(
        *flags,
        envvar=Settings.env_name(field),
        help=help,
        show_default=shown_default if shown_default is not None else True,
        **kw,
    )


Mode = Literal[MODES]
Backend = Literal[BACKENDS]
IndexDir = Annotated[Path, setting("index_dir", "--index-dir", help="Index directory.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts.")]
StoreFlag = Annotated[
    Literal["faiss", "milvus"] | None,
    setting("store", "--store", help="Where vectors live.", shown_default="what the index uses; faiss for a new one"),
]
MilvusUri = Annotated[
    str,
    setting(
        "milvus_uri",
        "--milvus-uri",
        help="Milvus: a local Milvus Lite folder or http://HOST:19530 (a token goes in RAG_MILVUS_TOKEN).",
        shown_default="INDEX_DIR/milvus.db",
    ),
]
DenseIndexFlag = Annotated[
    str,
    setting(
        "dense_index",
        "--dense-index",
        metavar="KIND[@CHUNKS]",
        help="FAISS index: flat (exact), hnsw or ivf-pq "
        "(approximate), or e.g. ivf-pq@200000 (flat below 200,000 chunks).",
        shown_default="what the index uses; flat for a new one",
    ),
]
# `rag eval` keys its LLM prompts' delimiters with this unless RAG_PROMPT_KEY is set: reproducible, not secret
EVAL_PROMPT_KEY = "rag eval"
K = Annotated[int, setting("k", "--k", help="Number of passages.", min=1)]
ModeOption = Annotated[Mode, setting("mode", "--mode", help="Retrieval: dense and BM25 fused, or one of them.")]
BackendOption = Annotated[Backend, setting("backend", "--backend", help="What writes the answer.")]
SourceGlobs = Annotated[
    list[str] | None,
    typer.Option(
        "--source", metavar="GLOB", help="Only documents whose name (as search shows it) matches GLOB; repeatable."
    ),
]
MinConfidence = Annotated[
    float | None,
    setting(
        "min_confidence",
        "--min-confidence",
        min=0.0,
        max=1.0,
        help="Abstain below this calibrated confidence, 0-1 (higher: fewer but surer answers).",
        shown_default="the fitted threshold in rag/answer/calibration.json",
    ),
]


@app.callback()
def _validate_environment(ctx: typer.Context) -> None:
    """Every RAG_* variable is checked before a command reads its options: a bad one names itself."""
    if not ctx.meta.get("rag.help"):
        _settings(ctx)


def _settings(ctx: typer.Context | None = None, **flags: Any) -> Settings:
    """Settings from the environment, with the options given on the command line on top. Values typer took
    from the environment or its defaults are left to `Settings.from_env`, so they are validated in one place."""
    given = {name: value for name, value in flags.items() if ctx is not None and _from_command_line(ctx, name)}
    try:
        return Settings.from_env(os.environ).with_overrides(**given)
    except RagError as exc:
        _fail(exc, code=2)


def _from_command_line(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _fail(exc: Exception, code: int = 1):
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _cited(c: Citation) -> str:
    """A citation as `rag ask` lists it: passage number, where, the span and its quote."""
    return f"  [{c.n}] {_where(c.source, c.location)} (chars {c.char_start}-{c.char_end}): \u201c{c.quote}\u201d"


def _where(source: str, location) -> str:
    """A file and, where its format has one, a location: "report.pdf, p. 3", "guide.md, § Setup", "notes.txt"."""
    return f"{source}, {location.label}" if location.label else source


def _check_sources(retriever, globs: list[str] | None) -> None:
    """A --source that matches no indexed document is a mistake worth saying, not an empty answer."""
    if globs and not retriever.matching_sources(globs):
        names = sorted(retriever.index.source_rows())
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        raise RagError(
            f"no indexed document matches --source {' '.join(globs)} (documents: {shown}; `rag documents` lists them)"
        )


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


@app.command()
def index(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Files or folders to add or re-sync [default: every source the index records; seeds/ for a new index]."
        ),
    ] = None,
    index_dir: IndexDir = Settings.default("index_dir"),
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Ignore the existing vectors and embed every source again.")
    ] = False,
    add: Annotated[
        bool, typer.Option("--add", help="Keep files deleted from PATHS in the index (no pruning).")
    ] = False,
    chunk_size: Annotated[int, setting("chunk_size", "--chunk-size", help="Chunk size in tokens.")] = Settings.default(
        "chunk_size"
    ),
    chunk_overlap: Annotated[
        int, setting("chunk_overlap", "--chunk-overlap", help="Overlap in tokens.")
    ] = Settings.default("chunk_overlap"),
    store: StoreFlag = None,
    milvus_uri: MilvusUri = Settings.default("milvus_uri"),
    dense_index: DenseIndexFlag = Settings.default("dense_index"),
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="[ADDRESS]",
            help="Embed as a Ray Data job: on the "
            "cluster at ADDRESS (ray://HOST:10001, HOST:6379 or auto), or alone for a local Ray instance.",
        ),
    ] = None,
    ray_workers: Annotated[
        int | None, typer.Option(help="Embedding workers on Ray.", min=1, show_default="one per CPU")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Build or update the index from its sources: new or changed files are embedded, deleted files dropped.

    The index remembers the files and folders it was built from; `rag index` alone re-syncs all of them,
    `rag index PATH` adds or re-syncs PATH and keeps the rest. `rag remove SOURCE` drops a source.
    """
    missing = [str(p) for p in paths or [] if not p.exists()]
    if missing:
        _fail(f"no such file or folder: {', '.join(missing)}", code=2)
    settings = _settings(
        ctx,
        index_dir=index_dir,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        store=store,
        milvus_uri=milvus_uri,
        dense_index=dense_index,
    )
    from rag.index.embedding import embedder_for
    from rag.index.indexer import Indexer

    try:
        embedder = embedder_for(settings)
        if ray is not None:
            from rag.index.distributed import RayEmbedder

            embedder = RayEmbedder(embedder, ray, ray_workers)
        indexer = Indexer(settings, embedder)
        if not paths and not indexer.sources():
            paths = [Path("seeds")]  # a new index starts from the bundled corpus
        report = indexer.index(paths or None, rebuild=rebuild, prune=not add, progress=not as_json)
    except RagError as exc:
        _fail(exc)
    if report.upgraded_from is not None:
        typer.secho(
            f"the index was in format {report.upgraded_from}, which this version cannot read: rebuilt from its "
            f"sources ({', '.join(report.sources)})",
            fg=typer.colors.YELLOW,
            err=True,
        )
    for source in report.sources_missing:
        typer.secho(
            f"warning: source {source} no longer exists; its documents stay in the index: "
            f"run `rag remove {source}` to drop them",
            fg=typer.colors.YELLOW,
            err=True,
        )
    if as_json:
        _print_json(report.to_dict())
    else:
        verb = "updated" if report.changed else "unchanged"
        typer.echo(
            f"index {verb} at {settings.index_dir}: {report.files_indexed} files "
            f"({report.files_updated} read), {report.chunks_embedded} chunks embedded, "
            f"{report.chunks_removed} removed, {report.chunks_total} in total, {report.seconds:.1f}s; "
            f"sources: {', '.join(report.sources)}"
        )
        for skip in report.files_skipped:
            typer.secho(f"skipped {skip.path}: {skip.reason}", fg=typer.colors.YELLOW, err=True)


@app.command()
def remove(
    targets: Annotated[
        list[str],
        typer.Argument(
            metavar="SOURCE...",
            help="Recorded sources, or indexed files or "
            "folders (paths, names as search shows them, or doc ids), to drop from the index.",
        ),
    ],
    ctx: typer.Context,
    index_dir: IndexDir = Settings.default("index_dir"),
    as_json: JsonFlag = False,
) -> None:
    """Drop sources or documents from the index. Nothing is re-embedded; files on disk are left alone, except
    uploaded copies in the upload area, which are deleted."""
    settings = _settings(ctx, index_dir=index_dir)
    from rag.index.embedding import embedder_for
    from rag.index.indexer import Indexer

    try:
        report = Indexer(settings, embedder_for(settings)).remove(targets)
    except RagError as exc:
        _fail(exc)
    if as_json:
        _print_json(report.to_dict())
    else:
        if report.sources_removed:
            typer.echo(
                f"removed source{'s' if len(report.sources_removed) > 1 else ''} {', '.join(report.sources_removed)}"
            )
        typer.echo(
            f"removed {_count(len(report.files_removed), 'file')} ({', '.join(report.files_removed)}), "
            f"{_count(report.chunks_removed, 'chunk')}; the index at {settings.index_dir} holds "
            f"{_count(report.files_total, 'file')}, {_count(report.chunks_total, 'chunk')}; "
            f"sources: {', '.join(report.sources) or 'none'}"
        )
    for path in report.uploads_deleted if not as_json else ():
        typer.echo(f"deleted the uploaded copy {path}")
    for path in report.still_in_sources:
        typer.secho(
            f"warning: {path} is still inside a recorded source: the next `rag index` adds it back "
            "(delete the file, or remove its folder)",
            fg=typer.colors.YELLOW,
            err=True,
        )


@app.command()
def documents(
    ctx: typer.Context,
    index_dir: IndexDir = Settings.default("index_dir"),
    as_json: JsonFlag = False,
) -> None:
    """List the indexed documents: source, title, pages, chunks, size, when added, and whether it is an upload."""
    settings = _settings(ctx, index_dir=index_dir)
    from rag.index.catalog import list_documents
    from rag.index.dense_store import StoreOptions
    from rag.index.store import IndexStore

    try:
        rows = list_documents(
            IndexStore(settings.index_dir, StoreOptions.from_settings(settings)).load(), settings.uploads
        )
    except RagError as exc:
        _fail(exc)
    if as_json:
        _print_json([d.to_dict() for d in rows])
        return
    width = max((len(d.source) for d in rows), default=8)
    for d in rows:
        pages = f"{d.pages} p." if d.pages else "-"
        size = f"{d.size / 1024:.1f} KB" if d.size is not None else "-"
        typer.echo(
            f"{d.source:<{width}}  {pages:>6}  {_count(d.chunks, 'chunk'):>10}  {size:>9}  "
            f"{d.added_at or '-':<20}  {'upload  ' if d.upload else ''}{d.title}"
        )
    typer.echo(
        f"{_count(len(rows), 'document')}, {_count(sum(d.chunks for d in rows), 'chunk')} in {settings.index_dir}"
    )


@app.command()
def verify(ctx: typer.Context, index_dir: IndexDir = Settings.default("index_dir"), as_json: JsonFlag = False) -> None:
    """Check every byte of the index against its recorded sha256 (opening checks large files only by sample)."""
    settings = _settings(ctx, index_dir=index_dir)
    from rag.index.store import IndexStore

    try:
        report = IndexStore(settings.index_dir).verify()
    except RagError as exc:
        _fail(exc)
    if as_json:
        _print_json(report)
    else:
        typer.echo(
            f"index {report['version']} at {settings.index_dir} is intact: {report['artifacts']} files, "
            f"{report['bytes'] / 1e6:.1f} MB checked in {report['seconds']:.1f}s"
        )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    ctx: typer.Context,
    k: K = Settings.default("k"),
    mode: ModeOption = Settings.default("mode"),
    index_dir: IndexDir = Settings.default("index_dir"),
    milvus_uri: MilvusUri = Settings.default("milvus_uri"),
    source: SourceGlobs = None,
    as_json: JsonFlag = False,
) -> None:
    """Find the passages that best match QUERY (no LLM involved)."""
    settings = _settings(ctx, index_dir=index_dir, k=k, mode=mode, milvus_uri=milvus_uri)
    from rag.answer.retrieval import Retriever
    from rag.index.dense_store import StoreOptions
    from rag.index.embedding import embedder_for

    try:
        retriever = Retriever.open(
            settings.index_dir,
            embedder_for(settings),
            rrf_k=settings.rrf_k,
            options=StoreOptions.from_settings(settings),
        )
        _check_sources(retriever, source)
        hits = retriever.search(query, k=settings.k, mode=settings.mode, sources=source)
    except RagError as exc:
        _fail(exc)
    if as_json:
        _print_json([h.to_dict() for h in hits])
        return
    if not hits:
        typer.echo("no matching passages")
    for n, hit in enumerate(hits, 1):
        c = hit.chunk
        typer.secho(
            f"[{n}] {_where(c.source, c.location)} (chars {c.start}-{c.end})  score {hit.score:.4f} "
            f"(dense #{hit.dense_rank or '-'}, bm25 #{hit.bm25_rank or '-'})",
            bold=True,
        )
        typer.echo("    " + c.text.replace("\n", "\n    "))


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    ctx: typer.Context,
    backend: BackendOption = Settings.default("backend"),
    k: Annotated[int, setting("k", "--k", help="Passages given to the model.", min=1)] = Settings.default("k"),
    mode: ModeOption = Settings.default("mode"),
    grounding: Annotated[
        bool,
        setting("grounding", "--grounding/--no-grounding", help="Drop answer sentences the passages do not support."),
    ] = Settings.default("grounding"),
    min_confidence: MinConfidence = None,
    source: SourceGlobs = None,
    index_dir: IndexDir = Settings.default("index_dir"),
    as_json: JsonFlag = False,
) -> None:
    """Answer QUESTION from the indexed documents, with citations to exact source spans."""
    settings = _settings(
        ctx, index_dir=index_dir, backend=backend, k=k, mode=mode, grounding=grounding, min_confidence=min_confidence
    )
    from rag.answer.chain import RAG, REPLACED

    try:
        rag = RAG.open(settings=settings)
        _check_sources(rag.retriever, source)
        if as_json:
            _print_json(rag.ask(question, sources=source).to_dict())
            return
        answer = None
        drafting = rag.backend is not None  # a model's draft is shown as it is generated; extractive is instant
        for item in rag.stream(question, sources=source):
            if isinstance(item, str):
                if drafting:
                    typer.secho(item, nl=False, dim=True, err=True)
            else:
                answer = item
    except RagError as exc:
        _fail(exc)
    if drafting:
        typer.echo("", err=True)
    if answer.fallback:
        typer.secho(REPLACED, dim=True, err=True)
    typer.secho(answer.text, bold=True)
    if answer.short and not answer.abstained:
        typer.echo(f"Short answer: {answer.short.quote}")
    if answer.withheld:
        typer.echo(
            f"\nClosest match, not an answer (confidence {answer.confidence:.2f}, below the threshold "
            f"{answer.threshold:.2f}):"
        )
        for c in answer.closest:
            typer.echo(_cited(c))
    if answer.abstained and answer.passages:
        typer.echo("\nClosest passages:")
        for n, hit in enumerate(answer.passages[:3], 1):
            typer.echo(
                f"  [{n}] {_where(hit.chunk.source, hit.chunk.location)} (chars {hit.chunk.start}-"
                f"{hit.chunk.end}): {hit.chunk.text[:160]}..."
            )
    for c in answer.citations:
        typer.echo(_cited(c))
    fallback = f", fell back to {answer.fallback}" if answer.fallback else ""
    typer.secho(
        f"({answer.backend}: {answer.model}, confidence {answer.confidence:.2f}{fallback}, "
        f"{answer.timings.get('total', 0):.1f}s)",
        dim=True,
    )


@app.command("eval")
def eval_(
    file: Annotated[Path, typer.Argument(help="Question set (JSONL: id, question, answers, answerable, support).")],
    ctx: typer.Context,
    corpus: Annotated[Path, typer.Option(help="Corpus folder.")] = Path("seeds"),
    backend: Annotated[
        str, setting("backend", "--backend", help="Backends, comma-separated, e.g. extractive,local.")
    ] = Settings.default("backend"),
    k: Annotated[int, setting("k", "--k", help="Passages per question.", min=1)] = Settings.default("k"),
    out: Annotated[Path | None, typer.Option(help="Report folder.", show_default="eval/reports/RUN")] = None,
    cache: Annotated[
        Path,
        typer.Option(help="Where evaluation indexes are built, one per corpus content, chunking and embedding model."),
    ] = Path("eval/.cache"),
    source: Annotated[
        str | None,
        typer.Option(
            help="Only the questions on this source file (e.g. one SQuAD "
            "article; questions without support go with the one before)."
        ),
    ] = None,
    min_confidence: MinConfidence = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a question set through the answering chain and score retrieval, answers, citations, abstention.

    The corpus is indexed in its own cached index, never in the live one.
    """
    settings = _settings(ctx, k=k, min_confidence=min_confidence)
    chosen = backend if _from_command_line(ctx, "backend") else settings.backend
    backends = [b.strip() for b in chosen.split(",") if b.strip()]
    unknown = [name for name in backends if name not in BACKENDS]
    if unknown or not backends:
        _fail(f"--backend: {', '.join(map(repr, unknown)) or 'none given'}: use {', '.join(BACKENDS)}", code=2)
    if not file.is_file():
        _fail(f"no such question file: {file}", code=2)
    if not corpus.is_dir():
        _fail(f"no such corpus folder: {corpus}", code=2)
    import time

    from tqdm import tqdm

    from rag.answer.chain import RAG
    from rag.evaluation.evaluate import by_source, eval_index_dir, load_questions, run_eval
    from rag.evaluation.machine import cpu, int8_kernels_differ
    from rag.evaluation.report import write_report
    from rag.index.embedding import embedder_for
    from rag.index.indexer import Indexer

    run = time.strftime("%Y%m%d-%H%M%S") + "-" + "-".join(backends)
    out = out or Path("eval/reports") / run
    try:
        questions = load_questions(file)
        if source is not None:
            groups = by_source(questions)
            if source not in groups:
                raise RagError(f"no questions on source {source!r} in {file}: one of {', '.join(groups)}")
            questions = groups[source]
        settings = settings.with_overrides(index_dir=eval_index_dir(corpus, settings, cache))
        if not settings.prompt_key:  # the same prompts in every run, so an LLM backend's figures reproduce
            settings = settings.with_overrides(prompt_key=EVAL_PROMPT_KEY)
        embedder = embedder_for(settings)
        Indexer(settings, embedder).index([corpus], progress=not as_json)
        records, summaries = [], []
        for name in backends:
            rag = RAG.open(settings=settings.with_overrides(backend=name))
            bar = (lambda items, name=name: tqdm(items, desc=name, unit="q")) if not as_json else None
            rows, summary = run_eval(rag, questions, settings.k, progress=bar)
            records += rows
            summaries.append(summary)
    except RagError as exc:
        _fail(exc)
    fitted = rag.calibration.meta
    meta = {
        "run": run,
        "questions_file": str(file),
        "source": source,
        "corpus": str(corpus),
        "k": settings.k,
        "mode": settings.mode,
        "grounding": settings.grounding,
        # figures depend a little on the CPU (int8 kernels) and on which fit decided the abstentions
        "machine": cpu(),
        "calibration": {
            "fitted_at": fitted.get("fitted_at"),
            "fitted_on": fitted.get("machine"),
            "min_confidence": rag.min_confidence,
        },
    }
    write_report(out, records, summaries, meta)
    int8 = settings.embedding_backend == "onnx-int8"
    if int8 and not as_json and int8_kernels_differ(meta["machine"], fitted.get("machine") or {}):
        typer.secho(
            "note: the calibration was fitted on a CPU whose int8 kernels differ from this one's (avx512_vnni or not): "
            "the int8 embedder's numbers differ a little between the two, so figures can differ from the README's "
            "by a question or two a set (python eval/fit_calibration.py refits on this machine)",
            dim=True,
            err=True,
        )
    if as_json:
        _print_json({**meta, "out": str(out), "backends": summaries})
        return
    cols = [
        ("backend", lambda s: s["backend"]),
        ("recall@k", lambda s: s["retrieval"]["recall@k"]),
        ("mrr@10", lambda s: s["retrieval"]["mrr@10"]),
        ("ndcg@10", lambda s: s["retrieval"]["ndcg@10"]),
        ("EM", lambda s: s["answer"]["exact_match"]),
        ("F1", lambda s: s["answer"]["token_f1"]),
        ("contains", lambda s: s["answer"]["contains_answer"]),
        ("cite P", lambda s: s["citations"]["precision"]),
        ("cite R", lambda s: s["citations"]["recall"]),
        ("abstain", lambda s: s["abstention_rate"]),
        ("false abst", lambda s: s["false_abstention_rate"]),
        ("RC area", lambda s: s["selective"]["area"]),
        ("acc@50%", lambda s: s["selective"]["accuracy_at_50"]),
        ("ECE", lambda s: s["selective"]["ece"]),
        ("fallback", lambda s: s["fallback_rate"]),
        ("first p50 s", lambda s: s["latency"]["first_text_p50"]),
        ("p50 s", lambda s: s["latency"]["p50"]),
        ("p95 s", lambda s: s["latency"]["p95"]),
    ]
    typer.echo(" | ".join(name for name, _ in cols))
    for s in summaries:
        typer.echo(
            " | ".join(v if isinstance(v := get(s), str) else ("-" if v is None else f"{v:.3f}") for _, get in cols)
        )
    typer.echo(f"report: {out / 'report.html'}")


@app.command("eval-beir")
def eval_beir(
    folder: Annotated[Path, typer.Argument(help="A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.")],
    mode: Annotated[Literal[("all", *MODES)], typer.Option(help="Which retrieval to score.")] = "all",
    split: Annotated[str, typer.Option(help="Which qrels file to score against.")] = "test",
    whole_docs: Annotated[
        bool, typer.Option("--whole-docs", help="One vector per document, cut at 256 tokens (as MTEB).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Benchmark retrieval on a BEIR dataset with this pipeline: nDCG@10, recall@100, MRR@10 per mode."""
    if not (folder / "corpus.jsonl").is_file():
        what = (
            "is not a BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv)"
            if folder.is_dir()
            else "does not exist"
        )
        _fail(
            f"{folder} {what}. For SciFact, unpack BEIR's scifact.zip into a folder and pass it; `make bench` "
            "reads it from ../shared/data/scifact beside the repository, or from RAG_BENCH_DATA",
            code=2,
        )
    modes = ["bm25", "dense", "hybrid"] if mode == "all" else [mode]
    settings = _settings()
    from rag.evaluation.beir import evaluate_beir
    from rag.index.embedding import embedder_for

    try:
        result = evaluate_beir(folder, settings, embedder_for(settings), modes, split, whole_docs, progress=not as_json)
    except RagError as exc:
        _fail(exc)
    if as_json:
        _print_json(result)
        return
    typer.echo(
        f"{result['dataset']} ({result['split']}): {result['queries']} queries, {result['documents']} documents, "
        f"{result['chunks']} chunks ({result['chunking']}); index {result['index_seconds']}s, "
        f"{result['chunks_embedded']} chunks embedded"
    )
    typer.echo("mode    | nDCG@10 | recall@100 | MRR@10")
    for name, m in result["modes"].items():
        typer.echo(f"{name:<7} | {m['ndcg@10']:.4f}  | {m['recall@100']:.4f}     | {m['mrr@10']:.4f}")


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, setting("host", "--host", help="Address to bind.")] = Settings.default("host"),
    port: Annotated[int, setting("port", "--port", help="Port.", min=1, max=65535)] = Settings.default("port"),
    index_dir: IndexDir = Settings.default("index_dir"),
    backend: BackendOption = Settings.default("backend"),
    remove_any: Annotated[
        bool,
        setting(
            "remove_any",
            "--remove-any",
            help="Let the page and DELETE /v1/documents remove any document, not only uploads.",
        ),
    ] = Settings.default("remove_any"),
) -> None:
    """Serve the chat page at / and an OpenAI-compatible API at /v1 (login with RAG_AUTH=user:password)."""
    settings = _settings(ctx, host=host, port=port, index_dir=index_dir, backend=backend, remove_any=remove_any)
    try:
        from rag.serve.server import serve as run_server  # needs the ui extra (fastapi, gradio, uvicorn)

        run_server(settings)
    except RagError as exc:
        _fail(exc)


def main() -> None:
    sys.argv[1:] = _optional_ray_address(sys.argv[1:])
    app()


def _optional_ray_address(args: list[str]) -> list[str]:
    """`--ray` may stand alone (a local Ray instance): give it the value "local" unless an address follows."""
    import re

    out = []
    for i, arg in enumerate(args):
        out.append(arg)
        following = args[i + 1] if i + 1 < len(args) else ""
        if arg == "--ray" and not re.fullmatch(r"auto|local|ray://\S+|[\w.-]+:\d+", following):
            out.append("local")
    return out


if __name__ == "__main__":
    main()
