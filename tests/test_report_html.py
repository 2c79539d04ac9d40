"""``--save-examples`` and ``mmrobust report``: the page checked as a person would look at it, by parsing it.

A tiny robust run (image, text and multimodal attacks, a class named ``<script>alert(1)</script>``) is rendered;
the HTML is parsed with :mod:`html.parser`: every image must decode as a PNG, the tables must hold the
report's numbers, the substituted words must be marked, and nothing from the data may become markup.
"""

from __future__ import annotations

import base64
import copy
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from mmrobust.cli.main import app
from mmrobust.eval.run import EvalConfig, run_evaluation
from mmrobust.report import render_report

EVIL = "<script>alert(1)</script>"
K = 2
ATTACKS = "pgd,embed-sub,sep"


class Page(HTMLParser):
    """What a reader sees: images, tables (cell texts), marked words, alerts, and every tag that appeared."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.images: list[str] = []
        self.tables: list[dict] = []  # {"title": h2 above, "rows": [[cell text]]}
        self.marks: list[str] = []
        self.alerts: list[str] = []
        self.text: list[str] = []
        self._title = ""
        self._in: list[str] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._mark: list[str] | None = None
        self._alert: list[str] | None = None
        self._h2: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "h2":
            self._h2 = []
        elif tag == "table":
            self.tables.append({"title": self._title, "rows": []})
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "mark":
            self._mark = []
        elif tag == "div" and "alert" in (attrs.get("class") or "").split() and "bad" in attrs.get("class", ""):
            self._alert = []

    def handle_endtag(self, tag):
        if tag == "h2" and self._h2 is not None:
            self._title, self._h2 = "".join(self._h2).strip(), None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            self.tables[-1]["rows"].append(self._row)
            self._row = None
        elif tag == "mark" and self._mark is not None:
            self.marks.append("".join(self._mark))
            self._mark = None
        elif tag == "div" and self._alert is not None:
            self.alerts.append("".join(self._alert))
            self._alert = None

    def handle_data(self, data):
        self.text.append(data)
        for sink in (self._h2, self._cell, self._mark, self._alert):
            if sink is not None:
                sink.append(data)

    def table(self, title: str) -> list[list[str]]:
        found = [t["rows"] for t in self.tables if t["title"] == title]
        assert found, f"no table titled {title!r} in {[t['title'] for t in self.tables]}"
        return found[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    names = folder / "names.txt"
    names.write_text("\n".join(["zero", EVIL, "two", "three", "four", "five", "six", "seven", "eight", "nine"]) + "\n")
    out = folder / "eval.json"
    run_evaluation(EvalConfig(model="tiny", dataset="digits", n_samples=16, batch_size=8, attacks=ATTACKS,
                              eps=32 / 255, steps=2, classnames=str(names), progress=False, sanity=False,
                              save_examples=K, output=str(out)))
    return out


@pytest.fixture(scope="module")
def report(run: Path) -> dict:
    return json.loads(run.read_text())


@pytest.fixture(scope="module")
def page(run: Path) -> tuple[str, Page]:
    result = CliRunner().invoke(app, ["report", str(run), "-o", str(run.with_name("page.html"))])
    assert result.exit_code == 0, result.output
    html = run.with_name("page.html").read_text(encoding="utf-8")
    return html, Page(html)


# ---------------------------------------------------------------------------------------- --save-examples
def test_examples_are_the_first_attacked_images_of_the_sample(report, run):
    examples = report["examples"]
    assert examples["k"] == K and set(examples["attacks"]) == set(ATTACKS.split(","))
    indices, clean = report["sampling"]["indices"], report["per_example"]["clean"]
    first_correct = [i for i, ok in zip(indices, clean) if ok][:K]
    assert first_correct, "the tiny model got no image right: the fixture needs more images"
    # pgd runs first in the cascade, so it attacks exactly the clean-correct images
    assert [e["dataset_index"] for e in examples["attacks"]["pgd"]] == first_correct
    for name, items in examples["attacks"].items():
        assert len(items) == min(K, report["metrics"]["attacks"][name]["n_attacked"])
        for item in items:
            assert item["consistent"], (name, item)  # re-scoring gives the attack's own verdict
            assert item["top_before"][0]["label"] == item["label"]  # clean-correct
            assert (item["top_after"][0]["label"] != item["label"]) == item["broken"]
            for key in ("clean_png", "adversarial_png", "perturbation_png"):
                if key in item:
                    with Image.open(run.parent / item[key]) as im:
                        assert im.format == "PNG"
            if name != "embed-sub":  # pixel attacks: norms inside the budget, and actually perturbed
                assert 0 < item["linf"] <= 32 / 255 + 1e-5 and item["l2"] >= item["linf"]
            else:
                assert "adversarial_png" not in item and "linf" not in item
            if name != "pgd":
                prompts = item["prompts"]
                assert {p["label"] for p in prompts} >= {item["label"]}
                for p in prompts:
                    marked = [p["adversarial"][s:e] for s, e in p["spans"]]
                    assert marked == [new for _, new in p["changed"]]


def test_without_save_examples_the_report_is_unchanged(tmp_path):
    out = tmp_path / "plain.json"
    report = run_evaluation(EvalConfig(model="tiny", dataset="digits", n_samples=4, attacks="pgd", steps=1,
                                       progress=False, sanity=False, output=str(out)))
    assert "examples" not in report and not out.with_name("plain.json.examples").exists()


# ---------------------------------------------------------------------------------------- the page
def test_every_image_is_an_inlined_png(page, report):
    html, parsed = page
    n_files = sum(1 for items in report["examples"]["attacks"].values() for item in items
                  for key in ("clean_png", "adversarial_png", "perturbation_png") if key in item)
    assert len(parsed.images) == n_files > 0
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True))) as im:
            assert im.format == "PNG"
            im.verify()
    assert "http://" not in html and "https://" not in html  # self-contained: nothing to fetch


def test_tables_hold_the_reports_numbers(page, report):
    _, parsed = page
    rows = {r[0]: r for r in parsed.table("Accuracy")}
    metrics = report["metrics"]
    expected = {"clean": metrics["clean"], "worst case": metrics["worst_case"], **metrics["attacks"]}
    for name, block in expected.items():
        low, high = block["ci95_wilson"]
        assert rows[name][2] == f"{100 * block['accuracy']:.2f}"
        assert rows[name][3] == f"[{100 * low:.1f}, {100 * high:.1f}]"
        assert rows[name][4] == f"{block['n_correct']} / {block['n']}"
    for name, block in metrics["attacks"].items():
        assert rows[name][5:7] == [str(block["n_attacked"]), str(block["n_broken"])]
    paired = {r[0]: r for r in parsed.table("Paired tests vs clean")}
    for name, block in metrics["attacks"].items():
        drop = block["accuracy"] - metrics["clean"]["accuracy"]
        assert paired[name][1].startswith(f"{100 * drop:+.1f} [")
    # the gallery shows each example's probabilities
    gallery_cells = {c for t in parsed.tables if t["title"] == "Examples" for row in t["rows"] for c in row}
    for items in report["examples"]["attacks"].values():
        for item in items:
            for top in item["top_before"] + item["top_after"]:
                assert f"{100 * top['probability']:.1f}" in gallery_cells


def test_substituted_words_are_marked(page, report):
    _, parsed = page
    changed = {new for items in report["examples"]["attacks"].values() for item in items
               for p in item.get("prompts", []) for _, new in p["changed"]}
    assert changed, "the text attack changed nothing: the test would not see a mark"
    assert changed <= set(parsed.marks)


def test_a_class_name_never_becomes_markup(page, report):
    html, parsed = page
    assert EVIL in report["dataset"]["classes"]
    assert "script" not in parsed.tags
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert any(EVIL in t for t in parsed.text)  # shown as text


def test_a_caption_in_a_prompt_is_escaped_too(run, report, tmp_path):
    doctored = copy.deepcopy(report)
    item = next(i for items in doctored["examples"]["attacks"].values() for i in items if "prompts" in i)
    p = item["prompts"][0]
    p["original"], p["adversarial"], p["spans"], p["changed"] = "a photo", f"a {EVIL}", [[2, 2 + len(EVIL)]], [["photo", EVIL]]
    (run.parent / "doctored.json").write_text(json.dumps(doctored))
    html = render_report(run.parent / "doctored.json", tmp_path / "d.html").read_text()
    parsed = Page(html)
    assert "script" not in parsed.tags and EVIL in parsed.marks


def test_a_failed_sanity_check_is_shown_loudly(run, report, tmp_path):
    doctored = copy.deepcopy(report)
    doctored["sanity"] = {"ran": True, "checks": {"gradients": {"passed": False, "zero_gradient_fraction": 0.9},
                                                  "threat_model": {"passed": True}},
                          "failed": ["gradients"], "unreliable": True}
    doctored["unreliable"] = True
    (run.parent / "failed.json").write_text(json.dumps(doctored))
    parsed = Page(render_report(run.parent / "failed.json", tmp_path / "f.html").read_text())
    assert any("UNRELIABLE" in a and "gradients" in a for a in parsed.alerts)
    checks = {r[0]: r[1] for r in parsed.table("Sanity checks")}
    assert checks == {"check": "result", "gradients": "FAILED", "threat_model": "passed"}
    clean = Page(render_report(run, tmp_path / "ok.html").read_text())
    assert not clean.alerts  # sanity off in the fixture: nothing loud


def test_training_folder_has_its_curves(tmp_path):
    from mmrobust.report.pages import page_for

    folder = tmp_path / "train"
    folder.mkdir()
    history = [{"epoch": e, "steps": 2 * e, "train_loss": 1.0 / e, "eval": {"clean_accuracy": 0.5 + 0.1 * e}}
               for e in (1, 2, 3)]
    (folder / "log.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    (folder / "report.json").write_text(json.dumps({"task": "adversarial_fine_tuning", "method": "tecoa",
                                                    "model": {"spec": "tiny"}, "history": history}))
    parsed = Page(render_report(folder, tmp_path / "t.html").read_text())
    assert len(parsed.images) == 1
    with Image.open(io.BytesIO(base64.b64decode(parsed.images[0].split(",", 1)[1]))) as im:
        assert im.format == "PNG" and im.size[0] > 300
    rows = parsed.table("History")
    assert [r[-1] for r in rows[1:]] == ["60.00", "70.00", "80.00"]
    assert page_for(folder)["title"].startswith("tecoa")


def test_not_a_report_is_one_line_error(tmp_path):
    (tmp_path / "x.json").write_text("[1, 2]")
    result = CliRunner().invoke(app, ["report", str(tmp_path / "x.json")])
    assert result.exit_code == 2 and "not an mmrobust report" in result.output


def test_the_demo_page_knows_the_demos_columns():
    from mmrobust.demo import COLUMN_TITLES, COLUMNS
    from mmrobust.report.pages import DEMO_COLUMNS, DEMO_TITLES

    assert DEMO_COLUMNS == COLUMNS and DEMO_TITLES == COLUMN_TITLES


def test_an_interrupted_run_keeps_the_same_examples(tmp_path):
    from robust_test_models import prototype_digits_model

    class Interrupt(Exception):
        pass

    def stop(done: int) -> None:
        if done >= 1:
            raise Interrupt

    def config(folder: Path) -> EvalConfig:
        folder.mkdir()
        return EvalConfig(model="test:prototype", dataset="digits", n_samples=12, batch_size=2, attacks="pgd,embed-sub",
                          eps=16 / 255, steps=2, progress=False, sanity=False, save_examples=3,
                          output=str(folder / "r.json"))

    whole = run_evaluation(config(tmp_path / "whole"), model=prototype_digits_model())["examples"]
    with pytest.raises(Interrupt):  # after the first batch of 2: fewer than K examples kept so far
        run_evaluation(config(tmp_path / "cut"), model=prototype_digits_model(), after_batch=stop)
    resumed_config = config(tmp_path / "cut2")
    for name in ("r.json.state.json", "r.json.examples"):  # move the interrupted run's files to the resumed run
        (tmp_path / "cut" / name).rename(tmp_path / "cut2" / name)
    resumed = run_evaluation(resumed_config, model=prototype_digits_model())
    assert resumed["resume"]["resumed_from_position"] == 2
    assert resumed["examples"] == whole and all(len(v) == 3 for v in whole["attacks"].values())


def test_retrieval_examples_show_each_querys_top5_before_and_after(tin_captions, tmp_path):
    out = tmp_path / "r.json"
    report = run_evaluation(EvalConfig(model="tiny", dataset="flickr30k", data_root=str(tin_captions),
                                       task="retrieval", batch_size=3, progress=False, attacks="pgd,embed-sub",
                                       eps=8 / 255, steps=2, text_candidates=3, save_examples=K, output=str(out)))
    examples = report["examples"]["attacks"]
    for name, items in examples.items():
        assert [item["position"] for item in items] == list(range(K))
        for item in items:
            for side, ranks in (("retrieved_before", report["per_query"]["clean"]["image_to_text"]),
                                ("retrieved_after", report["per_query"][name]["image_to_text"])):
                top = item[side]
                assert len(top) == 5 and [t["similarity"] for t in top] == sorted((t["similarity"] for t in top),
                                                                                 reverse=True)
                rank = ranks[item["position"]]  # the report's own rank of the query's best own caption
                own = [i for i, t in enumerate(top) if t["own"]]
                assert (own[0] if own else None) == (rank if rank < 5 else None), (name, side)
    assert "adversarial_png" in examples["pgd"][0] and "prompts" in examples["embed-sub"][0]
    parsed = Page(render_report(out, tmp_path / "r.html").read_text())
    assert len(parsed.images) == sum(3 if "adversarial_png" in i else 1 for v in examples.values() for i in v)
    cells = {c for t in parsed.tables for row in t["rows"] for c in row}
    assert {t["caption"] for v in examples.values() for i in v for t in i["retrieved_before"]} <= cells
    rows = {r[0]: r for r in parsed.table("Recall %")}
    assert rows["pgd"][2] == f"{100 * report['metrics']['attacks']['pgd']['recall']['text_to_image']['r@1']:.1f}"
    changed = {a[s:e] for i in examples["embed-sub"] for p in i["prompts"] for s, e in [*p["spans"]]
               for a in [p["adversarial"]]}
    assert changed and changed <= set(parsed.marks)


def test_a_study_keeps_examples_per_cell_and_its_page_shows_them(tmp_path):
    """Issue 25: ``--save-examples`` on the studies too; each cell's report keeps its gallery, the page shows it."""
    out = tmp_path / "study"
    args = ["study", "eps", "--model", "tiny", "--eps", "8,32", "-n", "8", "-b", "8", "--eval-steps", "2",
            "--text-attack", "embed-sub", "--save-examples", "1", "-o", str(out), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    reports = sorted(out.rglob("*.json"))
    kept = [json.loads(p.read_text()).get("examples") for p in reports]
    kept = [k for k in kept if k]
    assert len(kept) == 2 and all(set(k["attacks"]) == {"pgd", "embed-sub", "sep"} for k in kept), reports
    parsed = Page(render_report(out, tmp_path / "s.html").read_text())
    assert len(parsed.images) >= 2 * 3  # a clean | adversarial | perturbation row per kept example at least
    refused = CliRunner().invoke(app, args[:-3] + ["--save-examples", "-1", "-o", str(tmp_path / "x"), "-q"])
    assert refused.exit_code == 2 and "--save-examples must be at least 0, got -1" in refused.output
