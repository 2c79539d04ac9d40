"""``mmrobust proxy build NAME`` and ``mmrobust proxy list``: the offline proxy VLMs and their cache."""

from __future__ import annotations

import json
from typing import Optional

import typer

from ..proxy import RECIPES, build_proxy, list_entries, list_proxies
from ..proxy.cache import default_cache_dir
from ..options.run import RunOptions
from .errors import user_errors_exit
from .options import Shared, flags, values_for, with_options

proxy_app = typer.Typer(
    name="proxy",
    help="Offline proxy VLMs trained here on real data (image tower + locked pretrained MiniLM text tower).",
    no_args_is_help=True,
    add_completion=False,
)


#: the proxy cache folder, for both proxy commands
CACHE_DIR = Shared("cache_dir", Optional[str], typer.Option(
    None, "--cache-dir", help="Cache folder (default: $MMROBUST_CACHE_DIR or the user cache dir /proxies)."))


@proxy_app.command("build")
@user_errors_exit
@with_options(flags(RunOptions, only=("seed", "data_root", "device", "progress")), (CACHE_DIR,))
def build_command(
    name: str = typer.Argument(..., help=f"Recipe: {', '.join(RECIPES)} (tinyimagenet reads "
                                         "DATA_ROOT/tiny-imagenet-200 and DATA_ROOT/cifar-10-batches-py)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if a verified build is cached."),
    **shared: object,
) -> None:
    """Build (or reuse, or resume) a proxy model; prints its folder and zero-shot accuracies."""
    run = values_for(RunOptions, shared)
    folder = build_proxy(name, seed=run.get("seed", 0), cache_dir=shared["cache_dir"], data_root=run.get("data_root"),
                         force=force, progress=run.get("progress", True), device=run.get("device"))
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    spec = manifest["spec"]
    typer.echo(f"{spec}: {folder}")
    for key, value in manifest["accuracy"].items():
        target = manifest["targets"].get(key)
        note = "" if target is None else f"  (target {100 * target['target']:.0f}%: " \
                                         f"{'reached' if target['reached'] else 'NOT reached'})"
        typer.echo(f"  {key:<28} {100 * value:6.2f}%{note}")
    timings = manifest["timings"]
    typer.echo(f"  build time {timings['total_s']:.0f}s (training {timings['train_s_all_runs']:.0f}s), "
               f"budget {timings['budget_minutes']:g} min")


@proxy_app.command("list")
@user_errors_exit
@with_options((CACHE_DIR,))
def list_command(**shared: object) -> None:
    """Show the recipes and every cached build (status, accuracies)."""
    cache_dir = shared["cache_dir"]
    typer.echo(f"recipes (cache: {default_cache_dir(cache_dir)}):")
    for row in list_proxies(cache_dir):
        typer.echo(f"  proxy:{row['name']:<14} {row['status']}")
        typer.echo(f"  {'':<20} {row['description']}")
    entries = list_entries(cache_dir)
    typer.echo("cached builds:" if entries else "cached builds: none")
    for row in entries:
        scores = ", ".join(f"{k} {100 * v:.1f}%" for k, v in row["accuracy"].items())
        typer.echo(f"  {row['name']:<14} seed {row['seed']:<3} {row['recipe_hash']}  {row['status']:<8} "
                   f"{scores or row['detail']}")
