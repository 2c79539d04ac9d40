"""Package layering: attacks sit below evaluation (issue 10), so an attack never pulls in the eval loop."""

import subprocess
import sys


def test_importing_attacks_does_not_import_eval():
    code = (
        "import sys, mmrobust.attacks, mmrobust.attacks.registry, mmrobust.attacks.image.eval_attacks, "
        "mmrobust.attacks.text.eval_attacks, mmrobust.attacks.multimodal.eval_attacks\n"
        "bad = sorted(m for m in sys.modules if m == 'mmrobust.eval' or m.startswith('mmrobust.eval.'))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"attacks imported {out.stdout.strip()}"
