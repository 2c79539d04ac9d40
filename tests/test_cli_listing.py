"""``mmrobust models`` and ``mmrobust datasets`` list what --model and --dataset accept."""

from __future__ import annotations

from typer.testing import CliRunner

from mmrobust.cli.main import app


def test_models_lists_every_spec_form():
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    for example in ("tiny", "open_clip:ViT-B-32:openai", "hf:openai/clip-vit-base-patch32", "ckpt:"):
        assert example in result.stdout


def test_datasets_lists_names_and_splits():
    result = CliRunner().invoke(app, ["datasets"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines() if line.strip()}
    assert rows["cifar10"] == "test" and rows["tinyimagenet"] == "val" and rows["digits"] == "test"
    assert "imagefolder" in rows
