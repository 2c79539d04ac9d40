"""Package layering: every package imports only the rungs below it (issue 20), checked statically.

The ladder, bottom to top: ``errors`` (and the package root) < ``options``, ``utils``, ``data``, ``stats`` <
``models`` < ``attacks`` < ``eval`` < ``training``, ``proxy`` < ``studies``, ``benchmark`` < ``report`` < ``demo`` < ``cli``.
Packages on one rung are siblings and import nothing of each other. Function-level (lazy) imports count: a lazy
import is still a dependency. The one dynamic edge, the model registry loading ``proxy:NAME`` by module name
(:mod:`mmrobust.models.registry`, a backend plug-in), is not an import and is not checked.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mmrobust"
LADDER = [("errors", ""), ("options", "utils", "data", "stats"), ("models",), ("attacks",), ("eval",),
          ("training", "proxy"), ("studies", "benchmark"), ("report",),
          ("demo",), ("cli",)]
RANK = {package: rank for rank, rung in enumerate(LADDER) for package in rung}


def package_of(module: str) -> str:
    """``mmrobust.attacks.text.x`` -> ``attacks``; the root and its attributes (``__version__``) -> ``""``."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    return top if top in RANK else ""


def imported_modules(source: str, module: str, is_package: bool) -> list[str]:
    """Every mmrobust module ``source`` imports (top-level and inside functions), relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "mmrobust":
                found += [target] if node.module else [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "mmrobust"]
    return found


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """``module imports X``, for each import of a package on the same or a higher rung."""
    mine = package_of(module)
    out = []
    for target in imported_modules(source, module, is_package):
        theirs = package_of(target)
        if theirs != mine and RANK[theirs] >= RANK[mine]:
            out.append(f"{module} ({mine}, rung {RANK[mine]}) imports {target} ({theirs}, rung {RANK[theirs]})")
    return out


def modules() -> list[tuple[str, Path, bool]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        parts = ("mmrobust",) + path.relative_to(SRC).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        out.append((".".join(parts[:-1] if is_package else parts), path, is_package))
    return out


def test_every_package_is_on_the_ladder() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    packages |= {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    assert packages <= set(RANK), f"not on the ladder: {sorted(packages - set(RANK))}"


def test_no_package_imports_its_own_rung_or_above() -> None:
    found = [v for module, path, is_package in modules()
             for v in violations(module, path.read_text(encoding="utf-8"), is_package)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("module, source", [
    # the two leaks this test was written to catch (issue 20), as they were
    ("mmrobust.attacks.text.similarity", "def f():\n    from ...proxy.architecture import load_minilm_encoder\n"),
    ("mmrobust.studies.ood", "def f():\n    from ..benchmark import BenchmarkConfig, run_benchmark\n"),
    # and the one found on the way: evaluation reaching up into training for the process group
    ("mmrobust.eval.run", "from ..training.distributed import DistributedContext\n"),
])
def test_the_checker_catches_the_leaks_it_was_written_for(module: str, source: str) -> None:
    assert len(violations(module, source)) == 1


def test_importing_attacks_does_not_import_eval():
    code = (
        "import sys, mmrobust.attacks, mmrobust.attacks.registry, mmrobust.attacks.image.eval_attacks, "
        "mmrobust.attacks.text.eval_attacks, mmrobust.attacks.multimodal.eval_attacks\n"
        "bad = sorted(m for m in sys.modules if m == 'mmrobust.eval' or m.startswith('mmrobust.eval.'))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"attacks imported {out.stdout.strip()}"
