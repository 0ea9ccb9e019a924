"""The self-review gate: parsing replies, the any-reject rule over a real HTTP backend, and a tiny policy.

``RecordedReviewServerDouble`` is a test double of a remote LLM (an OpenAI-compatible vLLM/Ollama
server): a ``ThreadingHTTPServer`` on 127.0.0.1 that answers ``/v1/completions`` with the review
completions in tests/synth/fixtures/recorded_reviews.json, choosing the program by a text in the
prompt and handing out that program's replies in order, one per request.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from local_server import LocalServerDouble, QuietHandler
from pydantic import ValidationError

from worldsmith.synth.review import (
    CHECKLIST,
    Review,
    ReviewConfig,
    ReviewResult,
    parse_review,
    review_prompt,
    review_seed,
    self_review,
)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "recorded_reviews.json"
RECORDS = json.loads(FIXTURE.read_text())


def corpus(name: str) -> str:
    return resources.files("worldsmith.synth.corpus").joinpath(name).read_text(encoding="utf-8")


def record(name: str) -> dict:
    return next(p for p in RECORDS["programs"] if p["name"] == name)


# --- parse_review -------------------------------------------------------------------------------------
CLEAN_ACCEPT = """The program looks right.
DATA_FLOW: OK - every field is rendered
INSTANCE_TRACE: OK - reference 3 checks out
ALGORITHM: OK - standard DP
SCORER: OK - exact integer match
VERDICT: ACCEPT
"""


def test_clean_accept():
    review = parse_review(CLEAN_ACCEPT)
    assert review.verdict == "accept"
    assert review.items == {k: "ok" for k in CHECKLIST}
    assert review.flagged == ()
    assert review.text == CLEAN_ACCEPT


def test_reject_with_a_flagged_scorer():
    review = parse_review(CLEAN_ACCEPT.replace("SCORER: OK - exact integer match", "SCORER: BUG - accepts 3.4")
                          .replace("VERDICT: ACCEPT", "VERDICT: REJECT"))
    assert review.verdict == "reject" and review.flagged == ("scorer",)
    assert review.items["scorer"] == "bug" and review.items["algorithm"] == "ok"


def test_accept_line_with_an_item_marked_bug_is_a_reject():
    text = CLEAN_ACCEPT.replace("ALGORITHM: OK - standard DP", "ALGORITHM: BUG - misses b")
    review = parse_review(text)
    assert review.verdict == "reject" and review.flagged == ("algorithm",)


def test_markdown_bold_list_markers_and_lower_case():
    text = ("- **Data flow**: ok\n* **INSTANCE_TRACE:** OK\n1. `algorithm` = Bug - off by one\n"
            "### scorer: [ok]\n\n**Verdict: Accept**\n")
    review = parse_review(text)
    assert review.items == {"data_flow": "ok", "instance_trace": "ok", "algorithm": "bug", "scorer": "ok"}
    assert review.verdict == "reject" and review.flagged == ("algorithm",)
    assert parse_review("__verdict__ = accept").verdict == "accept"
    assert parse_review("  verdict:reject").verdict == "reject"
    assert parse_review("**Final verdict:** REJECT").verdict == "reject"


def test_the_last_verdict_line_wins():
    assert parse_review("VERDICT: REJECT\nOn reflection the bound is fine.\nVERDICT: ACCEPT").verdict == "accept"
    assert parse_review("VERDICT: ACCEPT\nWait, score raises on ''.\nVERDICT: REJECT").verdict == "reject"


@pytest.mark.parametrize("text", [
    "",
    "The program seems fine to me.",
    "DATA_FLOW: OK\nINSTANCE_TRACE: OK\nALGORITHM: OK\nSCORER: OK\n",  # items but no verdict
    "DATA_FLOW: OK|BUG - note\nVERDICT: ACCEPT|REJECT",  # the template echoed back
    "VERDICT: maybe",
    "In the end my VERDICT: ACCEPT",  # not at the start of a line
])
def test_no_readable_verdict_is_unparsed(text):
    review = parse_review(text)
    assert review.verdict == "unparsed" and review.flagged == ()


def test_a_bug_item_without_a_verdict_line_is_a_reject():
    review = parse_review("SCORER: BUG - only checks the length\n(ran out of tokens")
    assert review.verdict == "reject" and review.flagged == ("scorer",)


def test_text_is_truncated_and_json_round_trips():
    review = parse_review("x" * 10_000 + "\nVERDICT: ACCEPT")
    assert review.verdict == "accept" and len(review.text) == 4000
    assert json.loads(json.dumps(review.to_json())) == {
        "verdict": "accept", "items": {}, "flagged": [], "text": review.text}


@pytest.mark.parametrize("hostile", [
    "VERDICT:" + " " * 400_000 + "!",
    ("SCORER =" + " " * 9_000 + "(\n") * 44,
    ("data_flow" * 1_100 + "\n") * 40,
    ("- * " * 2_500 + "\n") * 40,
    ("**" * 2_000 + "VERDICT:" + "[ " * 2_000 + "\n") * 45,
    "a" * 400_000,
])
def test_hostile_400k_inputs_return(hostile):
    assert len(hostile) >= 360_000
    assert parse_review(hostile).verdict == "unparsed"


def test_hostile_input_still_reads_a_verdict_at_the_end():
    text = "VERDICT:" + " " * 200_000 + "\n" + "SCORER: ok " * 20_000 + "\nVERDICT: REJECT"
    assert parse_review(text).verdict == "reject"


# --- the prompt ---------------------------------------------------------------------------------------
def test_prompt_holds_program_checklist_format_and_trace():
    source = corpus("lis_length.py")
    trace = record("lis_length")["trace"]
    prompt = review_prompt(source, trace)
    assert source.strip() in prompt
    for label in ("DATA_FLOW:", "INSTANCE_TRACE:", "ALGORITHM:", "SCORER:", "VERDICT: ACCEPT", "VERDICT: REJECT"):
        assert label in prompt
    assert trace["prompt"] in prompt and "Reference answer from solve: 3" in prompt
    assert "by hand" in prompt
    untraced = review_prompt(source)
    assert "Reference answer" not in untraced and "difficulty 0" in untraced
    # a program holding a fence cannot close the block early
    assert "````python" in review_prompt('DOC = """```"""\n')


# --- the gate over a real HTTP server -----------------------------------------------------------------
class _ReviewHandler(QuietHandler):
    server: RecordedReviewServerDouble

    def do_POST(self):  # noqa: N802  (the http.server naming)
        body = self.read_json()
        srv = self.server
        if self.path != "/v1/completions":
            return self.send(404, {"error": {"message": "not found"}})
        program = next((p for p in srv.records["programs"] if p["match"] in body.get("prompt", "")), None)
        if program is None:
            return self.send(400, {"error": {"message": "no recorded review for this prompt"}})
        with srv.lock:
            srv.requests.append(body)
            count = srv.counts.get(program["name"], 0)
            srv.counts[program["name"]] = count + 1
        self.send(200, program["replies"][count % len(program["replies"])])


class RecordedReviewServerDouble(LocalServerDouble):
    """A test double of a remote LLM serving review completions (see the module doc)."""

    def __init__(self) -> None:
        super().__init__(_ReviewHandler)
        self.records = RECORDS
        self.requests: list[dict] = []
        self.counts: dict[str, int] = {}


@pytest.fixture
def server():
    with RecordedReviewServerDouble() as srv:
        yield srv


def http_backend(url: str, workers: int = 1):
    from worldsmith.policy.http_backend import HTTPBackend, HTTPBackendConfig

    return HTTPBackend(HTTPBackendConfig(base_url=url, model="qwen2.5-coder-1.5b-instruct", logprobs=False,
                                         backoff_s=0.0, timeout_s=5.0, max_retries=0, max_workers=workers))


def _sent_prompts_hold(server, source: str, k: int) -> None:
    assert len(server.requests) == k
    for body in server.requests:
        assert source.strip() in body["prompt"]
        assert all(label in body["prompt"] for label in ("DATA_FLOW", "INSTANCE_TRACE", "ALGORITHM", "SCORER"))
        assert body["temperature"] == 0.6 and body["top_p"] == 1.0 and body["max_tokens"] == 1024
    seeds = sorted(body["seed"] for body in server.requests)
    assert seeds == [seeds[0] + i for i in range(k)]  # one distinct seed per copy


def test_correct_program_is_accepted_by_all_three(server):
    source, rec = corpus("lis_length.py"), record("lis_length")
    result = self_review(source, http_backend(server.url), seed=5, trace=rec["trace"])
    assert isinstance(result, ReviewResult)
    assert result.passed and result.reason == "3/3 reviews accepted"
    assert [r.verdict for r in result.reviews] == ["accept"] * 3
    assert all(r.flagged == () for r in result.reviews)
    _sent_prompts_hold(server, source, 3)
    assert all(rec["trace"]["prompt"] in body["prompt"] for body in server.requests)
    assert server.requests[0]["seed"] == review_seed(source, 5)
    payload = json.loads(json.dumps(result.to_json()))
    assert payload["passed"] is True and len(payload["reviews"]) == 3 and payload["seconds"] >= 0


def test_scorer_bug_found_by_one_reviewer_rejects(server):
    source, rec = corpus("bug_shape_only_feasibility.py"), record("graph_k_coloring")
    result = self_review(source, http_backend(server.url), trace=rec["trace"])
    assert not result.passed
    assert result.reason == "review 2/3 rejected: scorer"
    assert [r.verdict for r in result.reviews] == ["accept", "reject", "accept"]
    assert result.reviews[1].flagged == ("scorer",)
    assert "1, 1, 1, 1, 1" in result.reviews[1].text
    _sent_prompts_hold(server, source, 3)


def test_any_reject_holds_whatever_order_the_replies_come_back_in(server):
    source = corpus("bug_shape_only_feasibility.py")
    result = self_review(source, http_backend(server.url, workers=3))
    assert not result.passed
    assert sorted(r.verdict for r in result.reviews) == ["accept", "accept", "reject"]
    assert result.reason.endswith("/3 rejected: scorer")


def test_backend_errors_propagate(server):
    from worldsmith.policy.http_backend import HTTPBackendError

    with pytest.raises(HTTPBackendError):
        self_review("class Unknown: pass\n", http_backend(server.url))


class _Canned:
    """A backend returning fixed texts; counts its calls."""

    def __init__(self, texts: list[str]) -> None:
        self.texts, self.calls = texts, 0

    def generate(self, prompts, params):
        self.calls += 1
        self.params = params
        return type("R", (), {"texts": list(self.texts[: len(prompts)])})()


def test_on_unparsed_reject_or_abstain():
    texts = [CLEAN_ACCEPT, "I think it is fine", CLEAN_ACCEPT]
    strict = self_review("x = 1\n", _Canned(texts))
    assert not strict.passed and strict.reason == "1/3 reviews had no readable verdict"
    lenient = self_review("x = 1\n", _Canned(texts), ReviewConfig(on_unparsed="abstain"))
    assert lenient.passed and lenient.reason == "2/3 reviews accepted, 1 without a readable verdict (abstained)"
    silent = self_review("x = 1\n", _Canned(["hmm"] * 3), ReviewConfig(on_unparsed="abstain"))
    assert not silent.passed and "no readable review" in silent.reason


def test_disabled_too_long_and_wrong_count():
    backend = _Canned([CLEAN_ACCEPT] * 3)
    assert self_review("x = 1\n", backend, ReviewConfig(enabled=False)).passed
    long = self_review("#" * 50, backend, ReviewConfig(max_program_chars=20))
    assert not long.passed and long.reason.startswith("too long to review") and long.reviews == ()
    assert backend.calls == 0
    with pytest.raises(ValueError, match="2 completions for 3"):
        self_review("x = 1\n", _Canned([CLEAN_ACCEPT] * 2))
    one = self_review("x = 1\n", backend, ReviewConfig(k=1, max_new_tokens=64, temperature=0.9))
    assert one.passed and one.reason == "1/1 reviews accepted"
    assert (backend.params.max_new_tokens, backend.params.temperature) == (64, 0.9)


# --- config -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [{"k": 0}, {"temperature": 0.0}, {"temperature": -1}, {"max_new_tokens": 8},
                                 {"on_unparsed": "accept"}, {"reviews": 3}])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValidationError):
        ReviewConfig(**bad)


def test_config_defaults_are_the_spec_and_documented():
    cfg = ReviewConfig()
    assert (cfg.k, cfg.temperature, cfg.on_unparsed, cfg.enabled) == (3, 0.6, "reject", True)
    assert all(field.description for field in ReviewConfig.model_fields.values())
    with pytest.raises(ValidationError):
        cfg.k = 5  # frozen


# --- the tiny in-process policy -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_backend():
    import torch

    from worldsmith.policy.hf_backend import HFBackend
    from worldsmith.policy.model import TinyModelConfig, build_tiny_model
    from worldsmith.policy.tokenizer import build_char_tokenizer

    tok = build_char_tokenizer()
    model = build_tiny_model(tok, TinyModelConfig(max_position_embeddings=4096), seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield HFBackend(model, tok)
    torch.set_num_threads(threads)


def test_tiny_char_policy_cannot_review_so_it_rejects(tiny_backend):
    source = corpus("lis_length.py")
    cfg = ReviewConfig(max_new_tokens=48)
    result = self_review(source, tiny_backend, cfg, seed=3)
    assert not result.passed
    assert [r.verdict for r in result.reviews] == ["unparsed"] * 3
    assert "no readable verdict" in result.reason
    again = self_review(source, tiny_backend, cfg, seed=3)
    assert [r.text for r in again.reviews] == [r.text for r in result.reviews]
    assert all(isinstance(r, Review) and r.text for r in result.reviews)
    assert len({r.text for r in result.reviews}) > 1  # the three copies are sampled, not repeated
