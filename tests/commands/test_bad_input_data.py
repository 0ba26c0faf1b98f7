"""Bad input data through the CLI (issue 26, cases 10-13 and degenerate data): secrets never leak, the server URL
is built right, GRPO refuses a pool it cannot score, and degenerate pools are named with a warning."""

from __future__ import annotations

import base64
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from selectgym.cli import main
from selectgym.data import load_pool
from selectgym.data.verify import score
from tests.commands.test_bad_input import one_line_error

PASSWORD, QUERY_KEY, ENV_KEY = "pw-SECRET-1x", "q-SECRET-2y", "sk-SECRET-3z"
SECRETS = (PASSWORD, QUERY_KEY, ENV_KEY)


class EchoServer:
    """An OpenAI-style chat server on 127.0.0.1 that records each request. ``status`` 200 replies ``reply``;
    any other status answers with a body that echoes the request line and every header (as some proxies do),
    plus the bare bearer token, the way a careless server reports a bad key."""

    def __init__(self, status: int = 200, reply: str = "7") -> None:
        self.status, self.reply, self.requests = status, reply, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if server.status == 200:
                    choices = [{"index": i, "message": {"role": "assistant", "content": server.reply}}
                               for i in range(int(body.get("n", 1)))]
                    payload = json.dumps({"choices": choices}).encode()
                else:
                    auth = self.headers.get("Authorization", "")
                    payload = (f"Authorization: {auth} rejected, {auth.split(' ')[-1]} is invalid; POST {self.path} "
                               + json.dumps(dict(self.headers))).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def __enter__(self) -> EchoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def problems(tmp_path):
    """Four verifiable problems (answers '7', '8', ...)."""
    return write_jsonl(tmp_path / "problems.jsonl", [{"id": f"p{i}", "prompt": f"What is {i} + 7?",
                                                      "answer": str(i + 7)} for i in range(4)])


def rollout_features(pool: Path, out: Path, base_url: str, judge_url: str | None = None) -> list[str]:
    """`selectgym features` with GRPO rollouts from an OpenAI-compatible server (and an LLM judge on one)."""
    argv = ["features", "--pool", str(pool), "--out", str(out), "--features", "grpo", "--rollout-backend", "openai",
            "--base-url", base_url, "--api-model", "policy-1", "--gradient-type", "sgd", "--warmup-steps", "0",
            "--projection", "rademacher", "--proj-dim", "16", "--max-length", "32", "--rollouts", "2",
            "--max-new-tokens", "2", "--batch-size", "4", "--no-progress"]
    if judge_url:
        argv += ["--completion-reward", "judge", "--completion-reward-kwargs",
                 json.dumps({"base_url": judge_url, "model": "judge-1", "backoff": 0})]
    return argv


def assert_no_secret(capsys, caplog, out: Path | None = None) -> str:
    """No secret in stdout, stderr, the log, or any file under ``out``; returns stderr."""
    captured = capsys.readouterr()
    texts = {"stdout": captured.out, "stderr": captured.err, "log": caplog.text}
    if out is not None and out.exists():
        texts.update({str(p): p.read_bytes().decode("utf-8", "replace") for p in out.rglob("*") if p.is_file()})
    for where, text in texts.items():
        for secret in SECRETS:
            assert secret not in text, (where, secret, text[:2000])
    return captured.err


# case 12: credentials inside --base-url -------------------------------------------------------------------------


def test_url_credentials_are_sent_right_and_never_shown_or_stored(problems, tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "feats"
    with EchoServer(reply="7") as server, caplog.at_level(logging.INFO):
        url = f"http://alice:{PASSWORD}@127.0.0.1:{server.port}/v1?api_key={QUERY_KEY}&api-version=2"
        assert main(rollout_features(problems, out, url, judge_url=url)) == 0
    # the path is appended to the path and the query stays at the end; the userinfo goes as Basic auth
    paths = {r["path"] for r in server.requests}
    assert paths == {f"/v1/chat/completions?api_key={QUERY_KEY}&api-version=2"}, paths
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert {r["headers"]["Authorization"] for r in server.requests} == {f"Basic {basic}"}
    assert {r["body"]["model"] for r in server.requests} == {"policy-1", "judge-1"}
    assert_no_secret(capsys, caplog, out)
    meta = json.loads(next(out.glob("*/meta.json")).read_text())
    shown = f"http://alice:***@127.0.0.1:{server.port}/v1?api_key=***&api-version=2"
    assert meta["meta"]["config"]["base_url"] == shown
    assert meta["meta"]["config"]["completion_reward_kwargs"]["base_url"] == shown


def test_url_credentials_stay_out_of_errors_and_retry_warnings(problems, tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for status in (401, 503):  # refused at once; retried with a warning per attempt, then refused
        out = tmp_path / f"feats{status}"
        with EchoServer(status=status) as server, caplog.at_level(logging.WARNING):
            url = f"http://alice:{PASSWORD}@127.0.0.1:{server.port}?key={QUERY_KEY}"
            assert main(rollout_features(problems, out, url)) == 2
        assert server.requests and server.requests[0]["path"] == f"/v1/chat/completions?key={QUERY_KEY}"
        err = assert_no_secret(capsys, caplog, out)
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert f"http://127.0.0.1:{server.port}/v1/chat/completions?key=***" in err
        assert f"HTTP {status}" in err
        if status == 503:
            assert caplog.text.count("chat request to") == 3 and "key=***" in caplog.text
        caplog.clear()


def test_url_credentials_and_an_api_key_together_are_refused(problems, tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    with EchoServer() as server:
        url = f"http://alice:{PASSWORD}@127.0.0.1:{server.port}/v1"
        assert main(rollout_features(problems, tmp_path / "f", url)) == 2
    assert not server.requests
    err = assert_no_secret(capsys, caplog, tmp_path / "f")
    assert "carries a user:password and $OPENAI_API_KEY is set too" in err and err.count("\n") == 1


# case 13: a server's reply that echoes the API key ------------------------------------------------------------


def test_a_server_echoing_the_api_key_is_redacted(problems, tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    for status in (401, 500):
        out = tmp_path / f"feats{status}"
        with EchoServer(status=status) as server, caplog.at_level(logging.WARNING):
            assert main(rollout_features(problems, out, f"http://127.0.0.1:{server.port}/v1")) == 2
        assert server.requests[0]["headers"]["Authorization"] == f"Bearer {ENV_KEY}"  # the key was sent...
        err = assert_no_secret(capsys, caplog, out)  # ... and the echo of it is never shown
        assert f"HTTP {status}" in err and "Bearer ***" in err and err.count("\n") == 1, err
        if status == 500:
            assert caplog.text.count("chat request to") == 3 and "Bearer ***" in caplog.text
        caplog.clear()


# case 10: GRPO on data its verifier cannot score ------------------------------------------------------------------


def _no_model(monkeypatch):
    """Fail the test if finetune loads a model: the checks under test come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the data was checked")

    monkeypatch.setattr("selectgym.finetune.train.load_model", refuse)


def _stop_at_model(monkeypatch):
    """Stop finetune where the model would load (the warnings under test are given before it)."""
    from selectgym.errors import SelectgymError

    def stop(*args, **kwargs):
        raise SelectgymError("stopped before loading the model")

    monkeypatch.setattr("selectgym.finetune.train.load_model", stop)


GRPO = ["finetune", "--method", "grpo", "--batch-size", "4", "--num-generations", "2", "--max-steps", "1"]


def test_grpo_refuses_a_pool_the_verifier_cannot_score(suite_dir, tmp_path, capsys, monkeypatch):
    _no_model(monkeypatch)
    for data in (suite_dir / "sft.jsonl",  # no answers at all
                 write_jsonl(tmp_path / "blank.jsonl", [{"id": f"b{i}", "prompt": f"q{i}", "answer": " "}
                                                        for i in range(3)])):
        out = tmp_path / f"ft-{data.stem}"
        one_line_error(capsys, [*GRPO, "--data", str(data), "--out", str(out)],
                       "the verifier can score none of its")
        assert not (out / "adapter").exists()


@pytest.mark.parametrize("answer", [["3", "5"], {"value": 3}])
def test_an_answer_that_is_a_list_or_object_is_refused(tmp_path, capsys, monkeypatch, answer):
    _no_model(monkeypatch)
    data = write_jsonl(tmp_path / "odd.jsonl", [{"id": "a", "prompt": "q", "answer": "1"},
                                                {"id": "b", "prompt": "q2", "answer": answer}])
    message = f"odd.jsonl:2: field 'answer' must be a string or a number, got a {type(answer).__name__}"
    one_line_error(capsys, ["pool", "inspect", str(data), "--tokenizer", "none"], message)
    one_line_error(capsys, [*GRPO, "--data", str(data), "--out", str(tmp_path / "ft")], message)


def test_a_number_answer_is_read_as_json_writes_it(tmp_path, capsys):
    data = write_jsonl(tmp_path / "n.jsonl", [{"id": "a", "prompt": "q", "answer": 42},
                                              {"id": "b", "prompt": "q2", "answer": True}])
    assert main(["pool", "inspect", str(data), "--tokenizer", "none"]) == 0
    assert [ex.answer for ex in load_pool(data)] == ["42", "true"]


def test_an_edited_answer_wins_over_the_reasoning_gym_entry(suite_dir, tmp_path, capsys, caplog, monkeypatch):
    rows = [json.loads(line) for line in (suite_dir / "verifiable.jsonl").read_text().splitlines()[:4]]
    original = rows[0]["answer"]
    rows[0]["answer"] = "edited-999"
    data = write_jsonl(tmp_path / "edited.jsonl", rows)
    _stop_at_model(monkeypatch)
    with caplog.at_level(logging.WARNING):
        assert main([*GRPO, "--data", str(data), "--out", str(tmp_path / "ft")]) == 2
    assert f"1 examples have an 'answer' that differs from meta.entry's (first: {rows[0]['id']})" in caplog.text
    assert "stopped before loading the model" in capsys.readouterr().err
    edited, intact = load_pool(data)[0], load_pool(data)[1]
    assert score(edited, "edited-999") == 1.0 and score(edited, original) == 0.0  # the verifier follows the edit
    assert score(intact, intact.answer) == 1.0  # an unedited entry still uses reasoning-gym's scorer


# case 11 and degenerate data ----------------------------------------------------------------------------------------


@pytest.fixture()
def pairs(tmp_path):
    """Six preference pairs: two with chosen == rejected (one up to spaces), one with a whitespace-only rejected."""
    rows = [{"id": f"c{i}", "prompt": f"Say the number {i}.", "chosen": str(i), "rejected": str(i + 1)}
            for i in range(6)]
    rows[1]["rejected"] = rows[1]["chosen"]
    rows[3]["rejected"] = rows[3]["chosen"] + "  "
    rows[4]["rejected"] = " \n"
    return write_jsonl(tmp_path / "pairs.jsonl", rows)


def test_inspect_names_degenerate_pairs_and_validation_rows(pairs, tmp_path, capsys):
    assert main(["pool", "inspect", str(pairs), "--tokenizer", "none"]) == 0
    err = capsys.readouterr().err
    assert "2 of 6 preference pairs have chosen == rejected (first: c1, c3)" in err
    assert "1 of 6 examples have an empty or whitespace-only rejected (first: c4)" in err
    assert "Traceback" not in err and all(line.startswith("selectgym: warning: ") for line in err.splitlines())
    val = write_jsonl(tmp_path / "val.jsonl", [{"id": f"v{i}", "prompt": "What is 2 + 2?", "answer": "4"}
                                               for i in range(3)])
    assert main(["pool", "inspect", str(val), "--tokenizer", "none", "--json"]) == 0
    captured = capsys.readouterr()
    assert "2 of 3 rows repeat an earlier row (first: v1, v2)" in captured.err
    assert any("repeat an earlier row" in w for w in json.loads(captured.out)["warnings"])
    assert main(["pool", "inspect", str(pairs), "--val", str(pairs), "--tokenizer", "none"]) == 0
    assert "is the pool itself (the same 6 rows)" in capsys.readouterr().err


def test_a_clean_pool_gets_no_warning(suite_dir, capsys):
    assert main(["pool", "inspect", str(suite_dir / "validation.jsonl"), "--tokenizer", "none"]) == 0
    assert capsys.readouterr().err == ""


def test_features_and_dpo_gap_selection_warn_about_identical_pairs(pairs, tmp_path, capsys, caplog):
    feats = tmp_path / "feats"
    with caplog.at_level(logging.WARNING):
        assert main(["features", "--pool", str(pairs), "--val", str(pairs), "--out", str(feats), "--features",
                     "dpo_gap", "--gradient-type", "sgd", "--warmup-steps", "0", "--max-length", "32", "--batch-size",
                     "6", "--no-progress"]) == 0
    err = caplog.text  # logged before the features are computed
    assert "2 of 6 preference pairs have chosen == rejected (first: c1, c3)" in err
    assert "empty or whitespace-only rejected (first: c4)" in err
    assert "is the pool itself (the same 6 rows)" in err
    out = tmp_path / "sel.jsonl"
    assert main(["select", "--method", "dpo_gap", "--features", str(feats), "--budget", "5", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    chosen = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    same = sorted({"c1", "c3"} & set(chosen))
    assert same, chosen  # 5 of 6 leave out at most one of them
    assert f"{len(same)} of 5 selected pairs have chosen == rejected (first: {', '.join(same)})" in captured.err


def test_features_warn_about_empty_responses_and_a_validation_equal_to_the_pool(suite_dir, tmp_path, caplog):
    rows = [json.loads(line) for line in (suite_dir / "sft.jsonl").read_text().splitlines()[:4]]
    rows[2]["output"] = "   "
    pool = write_jsonl(tmp_path / "sft.jsonl", rows)
    with caplog.at_level(logging.WARNING):
        assert main(["features", "--pool", str(pool), "--val", str(pool), "--out", str(tmp_path / "f"), "--features",
                     "length", "--gradient-type", "sgd", "--warmup-steps", "0", "--no-progress"]) == 0
    err = caplog.text
    assert f"1 of 4 examples have an empty or whitespace-only response (first: {rows[2]['id']})" in err
    assert "is the pool itself (the same 4 rows)" in err


def test_dpo_finetune_warns_about_identical_pairs(pairs, tmp_path, capsys, caplog, monkeypatch):
    _stop_at_model(monkeypatch)
    with caplog.at_level(logging.WARNING):
        assert main(["finetune", "--method", "dpo", "--data", str(pairs), "--out", str(tmp_path / "ft"),
                     "--max-steps", "1"]) == 2
    assert "2 of 6 preference pairs have chosen == rejected (first: c1, c3); DPO learns nothing" in caplog.text
    assert "stopped before loading the model" in capsys.readouterr().err
