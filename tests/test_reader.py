"""The reader (rag/answer/reader.py): its weights file, that the fitting script's model and the shipped one score
alike, and that the shipped reader tells an answering sentence from the rest with the real bundled encoder."""

import numpy as np
import pytest

from rag.answer import calibration
from rag.answer.reader import PACKAGED, Reader, digest, packaged
from tests.conftest import eval_script


def test_a_file_that_is_not_a_reader_is_refused(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(ValueError, match="not a reader's weights"):
        Reader.load(path)


def test_the_shipped_weights_are_plain_arrays():
    with np.load(PACKAGED, allow_pickle=False) as data:  # raises if anything in it needs pickle
        assert {"head.weight", "head.bias", "null", "scale"} <= set(data.files)
        assert all(data[name].dtype == np.float32 for name in data.files)


def test_the_fitted_model_and_the_shipped_reader_score_alike():
    """eval/fit_reader.py trains a low-rank update beside the frozen encoder; the reader merges it into the
    encoder's weights. Both must give the same scores."""
    import torch

    fit = eval_script("fit_reader")
    torch.manual_seed(0)
    encoder, tokenizer, head, null = fit.build()
    for layer in encoder.encoder.layer:
        for m in ("query", "value"):
            getattr(layer.attention.self, m).B.data.normal_(0, 0.05)
    encoder.eval()
    question = "Who will run the plant?"
    sentences = ["The utility will own and operate the plant.", "It rained all week."]
    with torch.no_grad():
        trained = (fit.pair_logits(encoder, tokenizer, head, question, sentences) - null).numpy()
    shipped = Reader(fit.exported(encoder, head, null)).scores(question, sentences)
    assert np.allclose(trained, shipped, atol=1e-4)
    weights = fit.exported(encoder, head, null)
    unmerged = Reader({k: np.zeros_like(v) if k.endswith(".B") else v for k, v in weights.items()})
    assert not np.allclose(unmerged.scores(question, sentences), shipped, atol=1e-3), "the update is merged in"


def test_the_shipped_reader_prefers_the_sentence_that_answers():
    reader = packaged()
    sentences = [
        "The museum's board approved the return by nine votes to two on Monday.",
        "The objects will be handed over at a ceremony in La Paz on Sept. 18, 2026.",
        "The collection has been on display since the 1930s.",
    ]
    when = reader.scores("On what date will the handover ceremony take place?", sentences)
    assert int(np.argmax(when)) == 1
    votes = reader.scores("How did the board vote on the return?", sentences)
    assert int(np.argmax(votes)) == 0
    assert reader.scores("Anything?", []).shape == (0,)


def test_the_int8_graph_ranks_as_the_fitted_weights_do(tmp_path):
    """The shipped reader runs an int8 export of the updated encoder; its scores stay near torch's."""
    exported = Reader.load(PACKAGED, tmp_path)
    fitted = Reader(exported.weights)
    question = "How much did the engineer get for the objects he sold to the museum?"
    sentences = [
        "He sold the collection to the museum in 1931 for 4,200 kronor.",
        "The museum's board approved the return by nine votes to two.",
        "The objects were taken from graves near a village about 90 kilometres from La Paz.",
    ]
    a, b = exported.scores(question, sentences), fitted.scores(question, sentences)
    # the answer comes first in both; the two wrong sentences are 0.03 apart in torch, so their order is noise.
    # Over 160 judge-set pairs int8 differed from torch by 0.21 on average, 0.57 at the 95th percentile, 1.27 at most
    assert int(np.argmax(a)) == int(np.argmax(b)) == 0
    assert np.abs(a - b).max() < 1.5
    assert list((tmp_path / "reader").glob("*/reader-int8.onnx")), "the graph is kept in the model cache"
    # a sentence's score is its own: the same alone as among others (int8 scales its activations per run)
    for i, sentence in enumerate(sentences):
        assert exported.scores(question, [sentence])[0] == pytest.approx(a[i], abs=1e-4)


def test_the_packaged_calibration_was_fitted_on_the_packaged_reader():
    """The confidence reads the reader's scores: new reader weights without a refit would skew every confidence."""
    assert calibration.load().meta["reader"] == digest()
