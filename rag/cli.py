"""The `rag` command line: a thin adapter that reads settings, calls the library, prints results.

Heavy modules (torch, faiss, llama_cpp) are imported inside commands so `rag --help` stays instant.
Errors from the library become a one-line message and a non-zero exit code here, nowhere else.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from rag.errors import RagError
from rag.settings import Settings

app = typer.Typer(
    help="Cited-answer question answering over your documents: index files, search them, ask questions.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)

IndexDir = Annotated[Optional[Path], typer.Option("--index-dir", help="Index directory [env RAG_INDEX_DIR; default index/].")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts.")]
StoreFlag = Annotated[Optional[str], typer.Option("--store", help="Where vectors live: faiss or milvus [env RAG_STORE; "
                                                   "default: what the index uses, faiss for a new one].")]
MilvusUri = Annotated[Optional[str], typer.Option("--milvus-uri", help="Milvus: a local Milvus Lite folder or "
                                                  "http://HOST:19530 [env RAG_MILVUS_URI; token: RAG_MILVUS_TOKEN].")]


def _settings(**overrides) -> Settings:
    try:
        return Settings.from_env(os.environ).with_overrides(**overrides)
    except RagError as exc:
        _fail(exc, code=2)


def _fail(exc: Exception, code: int = 1):
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


@app.command()
def index(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Files or folders to index [default: seeds/].")] = None,
    index_dir: IndexDir = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Ignore the existing index and embed everything.")] = False,
    add: Annotated[bool, typer.Option("--add", help="Add PATHS to the index instead of making it mirror them.")] = False,
    chunk_size: Annotated[Optional[int], typer.Option(help="Chunk size in tokens [env RAG_CHUNK_SIZE].")] = None,
    chunk_overlap: Annotated[Optional[int], typer.Option(help="Overlap in tokens [env RAG_CHUNK_OVERLAP].")] = None,
    store: StoreFlag = None,
    milvus_uri: MilvusUri = None,
    dense_index: Annotated[Optional[str], typer.Option("--dense-index", help="FAISS index: flat (exact), hnsw or "
                           "ivf-pq (approximate), or e.g. hnsw@200000 (flat below 200,000 chunks) [env RAG_DENSE_INDEX; "
                           "default: what the index uses, flat for a new one].")] = None,
    ray: Annotated[Optional[str], typer.Option("--ray", metavar="[ADDRESS]", help="Embed as a Ray Data job: on the "
                   "cluster at ADDRESS (ray://HOST:10001, HOST:6379 or auto), or alone for a local Ray instance.")] = None,
    ray_workers: Annotated[Optional[int], typer.Option(help="Embedding workers on Ray [default: one per CPU].")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Build or update the index: only new or changed files are embedded; deleted files are dropped."""
    paths = paths or [Path("seeds")]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        _fail(f"no such file or folder: {', '.join(missing)}", code=2)
    settings = _settings(index_dir=index_dir, chunk_size=chunk_size, chunk_overlap=chunk_overlap, store=store,
                         milvus_uri=milvus_uri, dense_index=dense_index)
    from rag.embedding import embedder_for
    from rag.indexer import Indexer

    try:
        embedder = embedder_for(settings)
        if ray is not None:
            from rag.distributed import RayEmbedder

            embedder = RayEmbedder(embedder, ray, ray_workers)
        indexer = Indexer(settings, embedder)
        report = indexer.index(paths, rebuild=rebuild, prune=not add, progress=not as_json)
    except RagError as exc:
        _fail(exc)
    if as_json:
        _print_json(report.to_dict())
    else:
        verb = "updated" if report.changed else "unchanged"
        typer.echo(
            f"index {verb} at {settings.index_dir}: {report.files_indexed} files "
            f"({report.files_updated} read), {report.chunks_embedded} chunks embedded, "
            f"{report.chunks_removed} removed, {report.chunks_total} in total, {report.seconds:.1f}s"
        )
        for skip in report.files_skipped:
            typer.secho(f"skipped {skip.path}: {skip.reason}", fg=typer.colors.YELLOW, err=True)


@app.command()
def verify(index_dir: IndexDir = None, as_json: JsonFlag = False) -> None:
    """Check every byte of the index against its recorded sha256 (opening checks large files only by sample)."""
    settings = _settings(index_dir=index_dir)
    from rag.store import IndexStore

    try:
        report = IndexStore(settings.index_dir).verify()
    except RagError as exc:
        _fail(exc)
    if as_json:
        _print_json(report)
    else:
        typer.echo(f"index {report['version']} at {settings.index_dir} is intact: {report['artifacts']} files, "
                   f"{report['bytes'] / 1e6:.1f} MB checked in {report['seconds']:.1f}s")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[Optional[int], typer.Option("--k", help="Number of passages [env RAG_K; default 5].")] = None,
    mode: Annotated[Optional[str], typer.Option(help="hybrid (default), dense or bm25 [env RAG_MODE].")] = None,
    index_dir: IndexDir = None,
    milvus_uri: MilvusUri = None,
    as_json: JsonFlag = False,
) -> None:
    """Find the passages that best match QUERY (no LLM involved)."""
    settings = _settings(index_dir=index_dir, k=k, mode=mode, milvus_uri=milvus_uri)
    from rag.embedding import embedder_for
    from rag.milvus_store import StoreOptions
    from rag.retrieval import Retriever

    try:
        retriever = Retriever.open(settings.index_dir, embedder_for(settings),
                                   rrf_k=settings.rrf_k, options=StoreOptions.from_settings(settings))
        hits = retriever.search(query, k=settings.k, mode=settings.mode)
    except RagError as exc:
        _fail(exc)
    if as_json:
        _print_json([h.to_dict() for h in hits])
        return
    if not hits:
        typer.echo("no matching passages")
    for n, hit in enumerate(hits, 1):
        c = hit.chunk
        typer.secho(f"[{n}] {c.source} chars {c.start}-{c.end}  score {hit.score:.4f} "
                    f"(dense #{hit.dense_rank or '-'}, bm25 #{hit.bm25_rank or '-'})", bold=True)
        typer.echo("    " + c.text.replace("\n", "\n    "))


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    backend: Annotated[Optional[str], typer.Option(help="local (default), openai, azure or extractive [env RAG_BACKEND].")] = None,
    k: Annotated[Optional[int], typer.Option("--k", help="Passages given to the model [env RAG_K; default 5].")] = None,
    mode: Annotated[Optional[str], typer.Option(help="Retrieval: hybrid (default), dense or bm25.")] = None,
    grounding: Annotated[Optional[bool], typer.Option("--grounding/--no-grounding", help="Drop answer sentences the passages do not support (default on).")] = None,
    index_dir: IndexDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Answer QUESTION from the indexed documents, with citations to exact source spans."""
    settings = _settings(index_dir=index_dir, backend=backend, k=k, mode=mode, grounding=grounding)
    from rag.chain import RAG

    try:
        rag = RAG.open(settings=settings)
        if as_json:
            _print_json(rag.ask(question).to_dict())
            return
        answer = None
        for item in rag.stream(question):
            if isinstance(item, str):
                typer.secho(item, nl=False, dim=True, err=True)  # the draft as it is generated
            else:
                answer = item
    except RagError as exc:
        _fail(exc)
    typer.echo("", err=True)
    typer.secho(answer.text, bold=True)
    if answer.abstained and answer.passages:
        typer.echo("\nClosest passages:")
        for n, hit in enumerate(answer.passages[:3], 1):
            typer.echo(f"  [{n}] {hit.chunk.source} chars {hit.chunk.start}-{hit.chunk.end}: {hit.chunk.text[:160]}...")
    for c in answer.citations:
        typer.echo(f"  [{c.n}] {c.source} chars {c.char_start}-{c.char_end}: \u201c{c.quote}\u201d")
    typer.secho(f"({answer.backend}: {answer.model}, {answer.timings.get('total', 0):.1f}s)", dim=True)


@app.command("eval")
def eval_(
    file: Annotated[Path, typer.Argument(help="Question set (JSONL: id, question, answers, answerable, support).")],
    corpus: Annotated[Optional[Path], typer.Option(help="Corpus folder [default: seeds/ with the project index].")] = None,
    backend: Annotated[Optional[str], typer.Option(help="Backends, comma-separated, e.g. extractive,local.")] = None,
    k: Annotated[Optional[int], typer.Option("--k", help="Passages per question [default 5].")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Report folder [default eval/reports/<run>].")] = None,
    index_dir: IndexDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a question set through the answering chain and score retrieval, answers, citations, abstention."""
    settings = _settings(index_dir=index_dir, k=k)
    backends = [b.strip() for b in (backend or settings.backend).split(",") if b.strip()]
    if not file.is_file():
        _fail(f"no such question file: {file}", code=2)
    corpus = corpus or Path("seeds")
    if not corpus.is_dir():
        _fail(f"no such corpus folder: {corpus}", code=2)
    import hashlib
    import time

    from tqdm import tqdm

    from rag.chain import RAG
    from rag.embedding import embedder_for
    from rag.evaluate import load_questions, run_eval
    from rag.indexer import Indexer
    from rag.report import write_report

    if index_dir is None and corpus.resolve() != Path("seeds").resolve():
        key = hashlib.sha256(str(corpus.resolve()).encode()).hexdigest()[:10]
        settings = settings.with_overrides(index_dir=Path("eval/.cache") / f"corpus-{corpus.name}-{key}")
    run = time.strftime("%Y%m%d-%H%M%S") + "-" + "-".join(backends)
    out = out or Path("eval/reports") / run
    try:
        questions = load_questions(file)
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
    meta = {"run": run, "questions_file": str(file), "corpus": str(corpus), "k": settings.k,
            "mode": settings.mode, "grounding": settings.grounding}
    write_report(out, records, summaries, meta)
    if as_json:
        _print_json({**meta, "out": str(out), "backends": summaries})
        return
    cols = [("backend", lambda s: s["backend"]), ("recall@k", lambda s: s["retrieval"]["recall@k"]),
            ("mrr@10", lambda s: s["retrieval"]["mrr@10"]), ("ndcg@10", lambda s: s["retrieval"]["ndcg@10"]),
            ("EM", lambda s: s["answer"]["exact_match"]), ("F1", lambda s: s["answer"]["token_f1"]),
            ("contains", lambda s: s["answer"]["contains_answer"]), ("cite P", lambda s: s["citations"]["precision"]),
            ("cite R", lambda s: s["citations"]["recall"]), ("abstain", lambda s: s["abstention_rate"]),
            ("false abst", lambda s: s["false_abstention_rate"]), ("p50 s", lambda s: s["latency"]["p50"]),
            ("p95 s", lambda s: s["latency"]["p95"])]
    typer.echo(" | ".join(name for name, _ in cols))
    for s in summaries:
        typer.echo(" | ".join(v if isinstance(v := get(s), str) else ("-" if v is None else f"{v:.3f}")
                              for _, get in cols))
    typer.echo(f"report: {out / 'report.html'}")


@app.command("eval-beir")
def eval_beir(
    folder: Annotated[Path, typer.Argument(help="A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.")],
    mode: Annotated[str, typer.Option(help="dense, bm25, hybrid or all.")] = "all",
    split: Annotated[str, typer.Option(help="Which qrels file to score against.")] = "test",
    whole_docs: Annotated[bool, typer.Option("--whole-docs", help="One vector per document, cut at 256 tokens (as MTEB).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Benchmark retrieval on a BEIR dataset with this pipeline: nDCG@10, recall@100, MRR@10 per mode."""
    if not folder.is_dir():
        _fail(f"no such folder: {folder}", code=2)
    modes = ["bm25", "dense", "hybrid"] if mode == "all" else [mode]
    settings = _settings()
    from rag.beir import evaluate_beir
    from rag.embedding import embedder_for

    try:
        result = evaluate_beir(folder, settings, embedder_for(settings),
                               modes, split, whole_docs, progress=not as_json)
    except RagError as exc:
        _fail(exc)
    if as_json:
        _print_json(result)
        return
    typer.echo(f"{result['dataset']} ({result['split']}): {result['queries']} queries, {result['documents']} documents, "
               f"{result['chunks']} chunks ({result['chunking']}); index {result['index_seconds']}s, "
               f"{result['chunks_embedded']} chunks embedded")
    typer.echo("mode    | nDCG@10 | recall@100 | MRR@10")
    for name, m in result["modes"].items():
        typer.echo(f"{name:<7} | {m['ndcg@10']:.4f}  | {m['recall@100']:.4f}     | {m['mrr@10']:.4f}")


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Address to bind [env RAG_HOST; default 127.0.0.1].")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port [env RAG_PORT; default 7860].")] = None,
    index_dir: IndexDir = None,
    backend: Annotated[Optional[str], typer.Option(help="local (default), openai, azure or extractive [env RAG_BACKEND].")] = None,
) -> None:
    """Serve the chat page at / and an OpenAI-compatible API at /v1 (login with RAG_AUTH=user:password)."""
    settings = _settings(host=host, port=port, index_dir=index_dir, backend=backend)
    from rag.server import serve as run_server

    try:
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
