"""Text through the CLI as a user drives it (``fulcrum.cli.main``): the task inferred from a CSV with a long
free-text column, ``--task tabular`` forcing a table, and bad input: one line naming the problem and the fix, a
non-zero exit, and nothing written (no version in the registry, no run left behind, no output file)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from fulcrum.artifact import Registry
from fulcrum.cli import main
from fulcrum.data import load_builtin


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def articles(tmp_path_factory) -> pd.DataFrame:
    """100 BBC articles (20 per topic), cut to 400 characters, with an id column."""
    bbc = load_builtin("bbc_news")
    df = pd.concat([g.sample(20, random_state=0) for _, g in bbc.groupby("label")]).sample(frac=1.0, random_state=0)
    df = df.reset_index(drop=True)
    body = df["text"].str.slice(0, 400).str.replace(r"\s+", " ", regex=True)  # one line per row in the CSV
    return pd.DataFrame({"id": range(len(df)), "body": body, "topic": df["label"]})


@pytest.fixture(scope="module")
def news(articles, tmp_path_factory) -> Path:
    """A registry holding news@1, the n-gram model trained through the CLI (max_chars 1000)."""
    tmp = tmp_path_factory.mktemp("text-cli")
    path = tmp / "news.csv"
    articles.to_csv(path, index=False)
    root = tmp / "registry"
    rc = main(["train", str(path), "--target", "topic", "--model", "ngram", "--name", "news", "--set", "max_chars=1000",
               "--no-progress", "--registry", str(root)])
    assert rc == 0
    return root


def error_line(err: str) -> str:
    """The one error line (notes before it are fine, a traceback is not)."""
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert "Traceback" not in err and lines and lines[-1].startswith("error: "), err
    return lines[-1]


def nothing_written(home: Path) -> None:
    """No version registered, nothing left in the registry's folder or beside it (runs/)."""
    root = home / "registry"
    if root.exists():
        assert Registry(root).list() == []
        assert sorted(p.name for p in root.iterdir() if not p.name.startswith("index.sqlite")) == []
    runs = home / "runs"
    assert not runs.exists() or not any(runs.rglob("*")), sorted(map(str, runs.rglob("*")))


# ----------------------------------------------------------------------------- which task trains


def test_train_infers_text_from_a_free_text_column(articles, tmp_path, capsys):
    path = tmp_path / "reviews.csv"
    articles.to_csv(path, index=False)
    rc, out, err = run(capsys, "train", path, "--target", "topic", "--model", "ngram", "--no-progress", "--json")
    assert rc == 0, err
    assert "task: text: column 'body' holds free text" in err and "--task NAME" in err
    m = Registry().load("reviews").manifest
    assert m["task"]["workload"] == "text" and m["task"]["text_column"] == "body"
    assert m["model"]["family"] == "ngram" and json.loads(out)["metrics"]["test"]["accuracy"] > 0.5


def test_task_tabular_forces_a_table(articles, tmp_path, capsys):
    path = tmp_path / "reviews.csv"
    articles.to_csv(path, index=False)
    rc, out, err = run(capsys, "train", path, "--target", "topic", "--task", "tabular", "--model", "linear",
                       "--no-progress")
    assert rc == 0, err
    assert "(tabular task)" in out and "task: text" not in err
    m = Registry().load("reviews").manifest
    assert m["task"]["workload"] == "tabular" and {c["name"] for c in m["inputs"]} == {"id", "body"}


def test_a_text_model_name_on_a_table_says_which_task_has_it(tmp_path, capsys, fulcrum_home):
    path = tmp_path / "flowers.csv"
    load_builtin("iris").to_csv(path, index=False)
    rc, _, err = run(capsys, "train", path, "--target", "target", "--model", "ngram", "--no-progress")
    line = error_line(err)
    assert rc == 1 and "'ngram'" in line and "text task" in line and "tabular" in line and "--task text" in line
    nothing_written(fulcrum_home)


def test_fine_tune_flag_trains_the_encoder_end_to_end(articles, tmp_path, capsys, fulcrum_home, monkeypatch):
    monkeypatch.setenv("FULCRUM_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "tiny.csv"
    tiny = articles.groupby("topic").head(6).assign(body=lambda d: d["body"].str.slice(0, 120))
    tiny.to_csv(path, index=False)  # 30 texts, 16 tokens, 1 epoch: the flag's path, not a good model
    rc, out, err = run(capsys, "train", path, "--target", "topic", "--model", "minilm", "--fine-tune", "--set",
                       "max_length=16", "--set", "fine_tune_epochs=1", "--set", "measure_inference=false",
                       "--no-progress")
    assert rc == 0, err
    assert "fine-tuning MiniLM end to end" in err and "(text task)" in out
    m = Registry().load("tiny").manifest
    assert m["config"]["fine_tune"] is True and m["model"]["encoder"]["fine_tuned"] is True


def test_a_text_option_on_a_table_says_which_task_has_it(tmp_path, capsys, fulcrum_home):
    path = tmp_path / "flowers.csv"
    load_builtin("iris").to_csv(path, index=False)
    rc, _, err = run(capsys, "train", path, "--target", "target", "--fine-tune", "--no-progress")
    line = error_line(err)
    assert rc == 1 and "'fine_tune' is an option of the text task" in line and "--task text" in line
    nothing_written(fulcrum_home)


# ----------------------------------------------------------------------------- bad training data


def test_task_text_on_a_file_without_text(tmp_path, capsys, fulcrum_home):
    path = tmp_path / "flowers.csv"
    load_builtin("iris").to_csv(path, index=False)
    rc, _, err = run(capsys, "train", path, "--target", "target", "--task", "text", "--no-progress")
    line = error_line(err)
    assert rc == 1 and "No column looks like free text" in line and "text_column=NAME" in line
    nothing_written(fulcrum_home)


def test_a_label_column_with_one_class(articles, tmp_path, capsys, fulcrum_home):
    path = tmp_path / "one.csv"
    articles.assign(topic="sport").to_csv(path, index=False)
    rc, _, err = run(capsys, "train", path, "--target", "topic", "--model", "ngram", "--no-progress")
    line = error_line(err)
    assert rc == 1 and "at least two classes" in line and "'sport'" in line and "Add rows of another class" in line
    nothing_written(fulcrum_home)


def test_every_text_empty_or_whitespace(articles, tmp_path, capsys, fulcrum_home):
    path = tmp_path / "blank.csv"
    articles.assign(body=["", "   ", "\t"] * 33 + [" "]).to_csv(path, index=False)
    rc, _, err = run(capsys, "train", path, "--target", "topic", "--task", "text", "--set", "text_column=body",
                     "--no-progress")
    line = error_line(err)
    assert rc == 1 and "'body'" in line and "missing or empty" in line and "choose the column" in line
    nothing_written(fulcrum_home)


def test_a_few_empty_texts_are_dropped_with_a_note(articles, tmp_path, capsys):
    """Training tolerates a few empty texts, as it tolerates missing cells: it drops those rows and says so."""
    path = tmp_path / "some.csv"
    articles.assign(body=articles["body"].where(articles.index % 25 != 0, "  ")).to_csv(path, index=False)
    rc, _, err = run(capsys, "train", path, "--target", "topic", "--model", "ngram", "--no-progress")
    assert rc == 0, err
    assert "dropped 4 row(s) whose text 'body' is missing or empty" in err


def test_non_utf8_bytes_in_the_training_file(articles, tmp_path, capsys, fulcrum_home):
    path = tmp_path / "latin.csv"
    articles.to_csv(path, index=False)
    raw = path.read_bytes().splitlines(keepends=True)
    raw[7] = raw[7].replace(b"the ", "the café ".encode("latin-1"), 1)  # line 8 of the file
    path.write_bytes(b"".join(raw))
    rc, _, err = run(capsys, "train", path, "--target", "topic", "--model", "ngram", "--no-progress")
    line = error_line(err)
    assert rc == 1 and "not UTF-8" in line and "line 8" in line and "save it as UTF-8" in line
    nothing_written(fulcrum_home)


# ----------------------------------------------------------------------------- bad prediction input


def write_texts(path: Path, texts: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_NONNUMERIC)
        w.writerow(["id", "body"])
        w.writerows(enumerate(texts))
    return path


GOOD = "Shares fell sharply on Wall Street after the central bank raised interest rates again."


@pytest.mark.parametrize("bad, words", [
    ("", ["'body' at row 2 (0-based) is missing", "send a non-empty string"]),
    ("   \t ", ["'body' at row 2 (0-based) is empty or only whitespace", "send some text"]),
    ("word " * 201, ["'body' at row 2 (0-based) has 1005 characters", "limit of 1000", "shorten it or split it"]),
])
def test_predict_refuses_a_bad_text_and_writes_nothing(news, tmp_path, capsys, bad, words):
    src = write_texts(tmp_path / "in.csv", [GOOD, GOOD, bad, GOOD])
    out = tmp_path / "out.csv"
    rc, _, err = run(capsys, "predict", "news", src, "-o", out, "--no-progress", "--registry", news)
    line = error_line(err)
    assert rc == 1 and all(w in line for w in words), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # no output, no temporary file


def test_predict_names_the_file_row_past_the_first_chunk(news, tmp_path, capsys):
    src = write_texts(tmp_path / "in.csv", [GOOD] * 7 + [" "])
    rc, _, err = run(capsys, "predict", "news", src, "-o", tmp_path / "out.csv", "--chunk-rows", "3",
                     "--no-progress", "--registry", news)
    assert rc == 1 and "'body' at row 7 (0-based) is empty" in error_line(err)


def test_predict_refuses_non_utf8_bytes(news, tmp_path, capsys):
    src = write_texts(tmp_path / "in.csv", [GOOD, GOOD, GOOD])
    raw = src.read_bytes().replace(b"Wall Street", "Wall Stréet".encode("cp1252"))
    src.write_bytes(raw)
    rc, _, err = run(capsys, "predict", "news", src, "-o", tmp_path / "out.csv", "--no-progress", "--registry", news)
    line = error_line(err)
    assert rc == 1 and "not UTF-8" in line and "line 2" in line and "save it as UTF-8" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_predict_good_texts(news, tmp_path, capsys):
    src = write_texts(tmp_path / "in.csv", [GOOD, "The striker scored twice in the cup final as the champions won."])
    rc, out, err = run(capsys, "predict", "news", src, "--keep", "id", "--no-progress", "--registry", news)
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("id,prediction,proba_") and lines[0].endswith(",ood_score") and len(lines) == 3
    assert [x.split(",")[1] for x in lines[1:]] == ["business", "sport"]
