"""A bounded load test against a real `rag serve` process on 127.0.0.1: 20 concurrent clients for 60 s mixing
the page's API (gradio_client) and /v1/chat/completions (the openai package, plain and streaming), extractive
backend so the load is on our code. No 5xx but the documented 503 "busy, retry", no crash, memory stable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import openai
import pytest
from gradio_client import Client

from conftest import SEEDS, free_port, wait_for_http
from rag.evaluation.metrics import percentile

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CLIENTS, SECONDS = 20, 60
QUESTIONS = [
    "When were the details disclosed?",
    "Does Microsoft keep exclusive rights?",
    "Who is the CEO of OpenAI?",
    "Which company hosts OpenAI's training workloads?",
]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_twenty_clients_for_a_minute(tmp_path) -> None:
    index_dir = tmp_path / "index"
    port = free_port()
    env = {
        **os.environ,
        "RAG_INDEX_DIR": str(index_dir),
        "RAG_BACKEND": "extractive",
        "RAG_PORT": str(port),
        "RAG_CONCURRENCY": "2",
        "RAG_QUEUE_SIZE": "6",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    subprocess.run(
        [sys.executable, "-m", "rag.cli", "index", str(SEEDS)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # as a user would, same settings
    server = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", server)
        # warm: the first answer loads the embedder
        openai.OpenAI(base_url=f"{url}/v1", api_key="x", timeout=120).chat.completions.create(
            model="rag", messages=[{"role": "user", "content": QUESTIONS[0]}]
        )

        results: list[tuple[str, str, float]] = []  # (kind, outcome, seconds)
        lock = threading.Lock()
        stop_at = time.time() + SECONDS

        def record(kind: str, outcome: str, started: float) -> None:
            with lock:
                results.append((kind, outcome, time.perf_counter() - started))

        def api_client(n: int) -> None:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=60)
            i = 0
            while time.time() < stop_at:
                question, started = QUESTIONS[(n + i) % len(QUESTIONS)], time.perf_counter()
                i += 1
                try:
                    if n % 2:
                        messages = [{"role": "user", "content": question}]
                        reply = client.chat.completions.create(model="rag", messages=messages)
                        assert reply.choices[0].message.content
                    else:
                        chunks = list(
                            client.chat.completions.create(
                                model="rag", messages=[{"role": "user", "content": question}], stream=True
                            )
                        )
                        assert chunks
                    record("api", "ok", started)
                except openai.APIStatusError as exc:
                    busy = exc.status_code == 503 and "busy" in str(exc)
                    record("api", "busy" if busy else f"http {exc.status_code}", started)
                    time.sleep(0.2)

        def ui_client(n: int) -> None:
            client = Client(url, verbose=False)
            i = 0
            while time.time() < stop_at:
                question, started = QUESTIONS[(n + i) % len(QUESTIONS)], time.perf_counter()
                i += 1
                try:
                    history, *_ = client.predict(question, [], "extractive", 5, "hybrid", True, api_name="/ask")
                    assert history[-1]["role"] == "assistant" and history[-1]["content"]
                    record("ui", "busy" if "busy" in str(history[-1]["content"]).lower() else "ok", started)
                except Exception as exc:  # gradio_client raises on a full queue
                    record("ui", "busy" if "queue is full" in str(exc).lower() else f"error {exc}"[:120], started)
                    time.sleep(0.2)

        threads = [threading.Thread(target=api_client if n % 2 else ui_client, args=(n,)) for n in range(CLIENTS)]
        memory = [rss_mb(server.pid)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(5)
            memory.append(rss_mb(server.pid))
        for t in threads:
            t.join()
        assert server.poll() is None, "the server died under load"
        urllib.request.urlopen(f"{url}/health", timeout=5)  # and still answers
    finally:
        server.terminate()
        server.wait(timeout=30)

    outcomes = {o for _, o, _ in results}
    ok = [s for _, o, s in results if o == "ok"]
    busy = sum(1 for _, o, _ in results if o == "busy")
    assert outcomes <= {"ok", "busy"}, outcomes  # no 5xx other than "busy, retry", no client errors
    assert len(ok) > 20 and busy > 0  # real work was done and a full queue was answered as such
    growth = memory[-1] - memory[1]
    assert growth < 150, memory  # stable: no per-request leak
    figures = {
        "clients": CLIENTS,
        "seconds": SECONDS,
        "answered": len(ok),
        "busy": busy,
        "throughput_per_s": round(len(ok) / SECONDS, 2),
        "p50_s": round(percentile(ok, 50), 3),
        "p95_s": round(percentile(ok, 95), 3),
        "rss_mb": [round(m) for m in memory],
    }
    (tmp_path / "load.json").write_text(json.dumps(figures))
    print("\nLOAD", json.dumps(figures))
