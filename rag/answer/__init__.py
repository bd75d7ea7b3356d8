"""Answering: retrieval, evidence selection, prompting, LLM backends, verification and the chain."""
