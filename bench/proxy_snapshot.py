"""Save the last finished epoch of an *unfinished* proxy build as an mmrobust checkpoint (``ckpt:DIR``).

    python bench/proxy_snapshot.py tinyimagenet OUT_DIR

Why: on a loaded 2-core machine the proxy:tinyimagenet build takes hours; its per-epoch training state
(``<cache>/tinyimagenet/seed0-*/state/train_state.pt``) already holds a usable model. This reads that state
(never writes or deletes anything in the cache) and saves the model, with the epoch in its metadata, so
results can say exactly what was measured ("proxy:tinyimagenet recipe after E of 18 epochs").
"""

from __future__ import annotations

import argparse

from mmrobust.models.checkpoint import save_checkpoint
from mmrobust.proxy.architecture import build_proxy_model
from mmrobust.proxy.cache import CacheEntry
from mmrobust.proxy.recipes import get_recipe
from mmrobust.proxy.training import STATE_NAME, load_train_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("output")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    recipe = get_recipe(args.name)
    entry = CacheEntry.of(recipe, args.seed, None)
    state = load_train_state(entry.state_dir / STATE_NAME)
    if state is None or state.get("recipe_hash") != recipe.config_hash():
        raise SystemExit(f"no usable training state for proxy:{args.name} under {entry.state_dir}")
    model = build_proxy_model(recipe, args.seed, spec=f"proxy:{args.name}@epoch{state['epoch']}")
    model.load_state_dict(state["model"])
    model = model.cpu().eval()
    save_checkpoint(model, args.output, metadata={"proxy": args.name, "seed": args.seed, "epoch": int(state["epoch"]),
                                                   "of_epochs": recipe.epochs, "history": state.get("history")})
    print(f"proxy:{args.name} after epoch {state['epoch']}/{recipe.epochs} -> ckpt:{args.output}")
    for record in state.get("history", []):
        print({k: v for k, v in record.items() if k.startswith("eval_subset/") or k == "loss"})


if __name__ == "__main__":
    main()
