"""``mmrobust eval --task retrieval``: image–text retrieval, clean and under image, text and multimodal attacks.

One run: load the scored model (``--model``) and, for a transfer run, the crafting model
(``--source-model``, SGA's setting); load the split (images brought to the crafting model's input size);
embed every caption once; then batch by batch (images with all their captions) embed the clean images
and let every attack craft on the source model, embedding what it returns with the scored model; finally
rank the whole split for the clean and every attacked gallery. Resumable per batch
(:mod:`.retrieval_state`); the metrics and their definitions are in :mod:`.retrieval_metrics`.
Each image's attack randomness is keyed by its dataset index (:meth:`RetrievalAttack.streams
<mmrobust.attacks.retrieval.base.RetrievalAttack.streams>`), so per-image and per-caption results, and
hence the recalls, do not depend on the batch size.
"""

from __future__ import annotations

import datetime as _dt
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..attacks.image.base import eval_mode
from ..attacks.image.eval_attacks import threat_model_description
from ..attacks.protocol import batch_seed
from ..attacks.retrieval.base import (RetrievalBatch, RetrievalContext, encode_captions, encode_images, flatten)
from ..attacks.retrieval.registry import build_retrieval_attacks, parse_retrieval_attacks
from ..data.retrieval_registry import load_retrieval_dataset
from ..data.sampling import indices_sha256, subsample_indices
from ..errors import ConfigError
from ..models import load_model
from ..models.base import VisionLanguageModel
from ..utils.environment import environment_versions
from ..utils.files import check_writable, write_json_atomic
from ..utils.seeding import seed_everything
from . import retrieval_metrics as metrics
from .retrieval_state import RetrievalStateFile
from .robust import ball_violations, seed_globals



def retrieval_attacks(config: Any) -> tuple[list[str], dict[str, Any], list]:
    """(names, option values, attacks) of a retrieval run, validated before any model is loaded."""
    if getattr(config, "preset", None):
        raise ConfigError("--preset names classification attack bundles; give retrieval attacks with --attack")
    names = parse_retrieval_attacks(config.attacks)
    values = {**config.attack_values(), **config.retrieval_values()}
    return names, values, build_retrieval_attacks(names, values)


def run_retrieval_evaluation(
    config: Any,
    *,
    model: VisionLanguageModel | None = None,
    source_model: VisionLanguageModel | None = None,
    after_batch: Callable[[int], None] | None = None,
    shard: bool = True,
) -> dict[str, Any]:
    """Evaluate retrieval for an :class:`~mmrobust.eval.run.EvalConfig` with ``task="retrieval"``.

    ``model``/``source_model`` override loading ``config.model``/``config.source_model`` (tests);
    ``after_batch`` is called after every saved batch (tests simulate an interruption with it).
    """
    from .run import check_run_options, weights_fingerprint
    from .resume import config_hash

    if config.output is not None:
        check_writable(config.output)
    check_run_options(config.batch_size, config.seed, config.n_samples, None)
    names, values, attacks = retrieval_attacks(config)
    options = {name: attack.options.to_dict() for name, attack in zip(names, attacks)}

    t0 = time.perf_counter()
    seed_everything(config.seed)
    from .distributed import Shard, eval_context, gather_retrieval_state

    dctx = eval_context(config.device, shard)  # torchrun: whole batches per rank, embeddings gathered before ranking
    device = dctx.device
    model = (load_model(config.model, device=str(device)) if model is None else model.to(device)).eval()
    transfer = config.source_model is not None or source_model is not None
    if source_model is None:
        source_model = load_model(config.source_model, device=str(device)) if config.source_model else model
    source_model = source_model.to(device).eval()
    dataset = load_retrieval_dataset(config.dataset, config.data_root, config.split)
    indices = subsample_indices(len(dataset), config.n_samples, config.seed)
    dataset = dataset.subset(indices)
    dataset.image_size = source_model.image_size
    owner = metrics.caption_owner(dataset.captions)
    captions = flatten(dataset.captions)
    offsets = [0]
    for group in dataset.captions:
        offsets.append(offsets[-1] + len(group))

    with eval_mode(model), eval_mode(source_model):
        clean_text = encode_captions(model, captions).cpu()
        source_text = clean_text if source_model is model else encode_captions(source_model, captions).cpu()
    t_text = time.perf_counter()
    ctx = RetrievalContext(model=source_model, captions=dataset.captions, caption_embeddings=source_text.to(device),
                           owner=owner.to(device), device=device, seed=config.seed, progress=config.progress)
    for attack in attacks:
        attack.prepare(ctx)

    digest = config_hash({
        "task": "retrieval", "model": config.model, "weights": weights_fingerprint(model),
        "source": weights_fingerprint(source_model) if transfer else None, "dataset": dataset.describe(),
        "indices": indices_sha256(indices), "batch_size": config.batch_size, "seed": config.seed,
        "attacks": names, "options": options, "device": device.type, "randomness": "per-image streams",
    })
    shard = Shard.of(dctx, config.batch_size, len(dataset))
    state_path = shard.state_path(config.output, ".state.pt") if config.output is not None and names else None
    shard_digest = digest if not dctx.enabled else config_hash({"run": digest, "shard": shard.__dict__})
    state_file = RetrievalStateFile(state_path, shard_digest, enabled=config.resume)
    state = state_file.load_or_new()
    from .examples import RetrievalExampleRecorder

    examples = RetrievalExampleRecorder.for_run(config, None, state.next_position, digest, dctx) if names else None
    done_here = 0
    for start, end in shard.spans():
        if start < state.next_position:  # finished before a resume
            continue
        images = dataset.images(range(start, end)).to(device)
        with eval_mode(model):
            state.clean_images.append(encode_images(model, images).cpu())
        batch = RetrievalBatch(images, torch.arange(start, end), dataset.captions[start:end], start,
                               [int(i) for i in indices[start:end]])
        for attack in attacks:
            seed_globals(batch_seed(config.seed, start, attack.name))
            t_attack = time.perf_counter()
            outcome = attack.attack_batch(batch)
            seconds = time.perf_counter() - t_attack
            if examples is not None:  # --save-examples (.examples)
                examples.capture_batch(attack, batch, outcome)
            with eval_mode(model):
                image_emb = (state.clean_images[-1] if outcome.adv_images is None
                             else encode_images(model, outcome.adv_images))
                text_emb = (clean_text[offsets[start]:offsets[end]] if outcome.adv_captions is None
                            else encode_captions(model, flatten(outcome.adv_captions)).cpu())
            ball = (ball_violations(images, outcome.adv_images, attack.threat_model())
                    if outcome.adv_images is not None else None)
            state.progress(attack.name).add(image_emb, text_emb, outcome.extra, ball, seconds)
        state.next_position = end
        state_file.save(state)
        done_here += 1
        if after_batch is not None:
            after_batch(done_here)
    t_done = time.perf_counter()
    state = gather_retrieval_state(state, shard, dctx)

    clean_ranks = metrics.ranks(torch.cat(state.clean_images), clean_text, owner)
    report = _report(config, model, source_model if transfer else None, dataset, indices, device)
    if dctx.enabled:
        report["distributed"] = shard.describe()
    block: dict[str, Any] = {"clean": {"recall": metrics.recall_summary(clean_ranks)}}
    per_query = {"clean": metrics.rank_lists(clean_ranks)}
    attack_blocks: dict[str, Any] = {}
    for attack in attacks:
        progress = state.attacks[attack.name]
        ranked = metrics.ranks(torch.cat(progress.image_embeddings), torch.cat(progress.text_embeddings), owner)
        per_query[attack.name] = metrics.rank_lists(ranked)
        attack_blocks[attack.name] = {
            "modality": attack.modality,
            "recall": metrics.recall_summary(ranked),
            "attack_success_rate": metrics.success_rate_summary(clean_ranks, ranked),
            "counts": {k: int(v) for k, v in progress.extra.items()},
            "ball_check": progress.ball or None,
            "seconds": round(progress.seconds, 3),
        }
    if attack_blocks:
        block["attacks"] = attack_blocks
    report["metrics"] = block
    report["per_query"] = per_query  # paired comparisons between attacks, models and runs
    if examples is not None:
        report["examples"] = examples.finish(captions, owner, torch.cat(state.clean_images), clean_text, {
            a.name: (torch.cat(state.attacks[a.name].image_embeddings), torch.cat(state.attacks[a.name].text_embeddings))
            for a in attacks})
    report["attacks"] = [attack.describe() for attack in attacks]
    perturbs = [a for a in attacks if a.threat_model() is not None]
    threat = perturbs[0].threat_model() if perturbs else None
    report["threat_model"] = ({**threat_model_description(threat["norm"], threat["eps"]),
                               "perturbs": f"pixels in [0, 1] at the crafting model's input size ({dataset.image_size} px)"}
                              if threat else None)
    report["attack_options"] = options
    failed = [name for name, b in attack_blocks.items()
              if b["ball_check"] and (b["ball_check"]["n_outside_ball"] or b["ball_check"]["n_out_of_box"])]
    report["sanity"] = {"ran": bool(perturbs), "checks_run": ["eps-ball and [0, 1] box of every adversarial image"]
                        if perturbs else [], "failed": failed}
    report["unreliable"] = bool(failed) if perturbs else None
    report["resume"] = {"enabled": config.resume, "config_hash": digest,
                        "state_file": str(state_path) if state_path else None, "resumed_from_position": state.resumed_from}
    report["timings"] = {"encode_captions_s": round(t_text - t0, 3), "batches_s": round(t_done - t_text, 3)}
    if config.output is not None:
        if dctx.is_main:
            write_json_atomic(Path(config.output), report)
        dctx.barrier()  # every shard keeps its resume state until the report is on disk
        state_file.remove()
    return report


def _report(config: Any, model: VisionLanguageModel, source: VisionLanguageModel | None, dataset, indices,
            device: torch.device) -> dict[str, Any]:
    """Provenance: what was measured, on what, how it was sampled, and what each number means."""
    return {
        "mmrobust_report_version": 1,
        "task": "robust_retrieval" if config.attacks else "retrieval",
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": model.describe(),
        "source_model": source.describe() if source is not None else None,
        "transfer": source is not None,
        "dataset": dataset.describe(),
        "n_samples": len(indices),
        "sampling": {"seed": config.seed, "unit": "images (with all their captions)",
                     "indices_sha256": indices_sha256(indices), "indices": [int(i) for i in indices]},
        "seed": config.seed,
        "batch_size": config.batch_size,
        "device": str(device),
        "precision": "fp32",
        "metric_definitions": {
            "recall": "fraction of queries whose match is in the top K (model's score; higher = more robust). "
                      "text_to_image: caption queries, own image; image_to_text: image queries, any own caption; "
                      "mean: mean of the six R@1/5/10",
            "attack_success_rate": "of the queries correct at K on clean data, the fraction no longer correct at K "
                                   "under attack (SGA's ASR; attack's score; higher = stronger attack)",
            "per_query": "0-based rank of each query's match, clean and per attack: text_to_image one per caption "
                         "(split order), image_to_text one per image (its best-ranked own caption); rank < K = hit at K",
        },
        "versions": environment_versions(),
    }
