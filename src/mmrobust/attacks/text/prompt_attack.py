"""Adversarial class prompts for zero-shot evaluation (shared by the text and multimodal eval attacks).

As in the study, the class prompts are attacked **once per run** (not per image): every prompt
``prompts[c][t]`` gets at most N words changed, and the classifier is rebuilt from the adversarial
prompts. The work happens lazily on first use, so a resumed run that restores the saved prompts
(:meth:`ClassPromptAttack.load_state_dict`) never re-runs the attack.

Options: :class:`~mmrobust.attacks.options.TextOptions` (words per prompt, candidates per word, masked LM,
goal, goal images per class, chunk size of the batched search, ``protect_classnames``, ``min_similarity``);
the typo generator is seeded from the run's seed.

The report block lists, per prompt, ``collides_with`` (other class names the adversarial prompt now
contains) and, per run, ``class_name_collisions`` (prompts with any) and the attack's ``cost``
(text-encoder calls, masked-LM forwards, texts scored, seconds).
"""

from __future__ import annotations

from typing import Any

import torch

from ...data.templates import validate_templates
from ...errors import ConfigError
from ...models.zeroshot import ZeroShotClassifier
from ..protocol import AttackContext
from .attacked_text import TextAttackResult
from .attacker import TextAttacker, eval_mode
from .classnames import ClassNameConstraint, collisions, prompt_classes
from .cost import AttackCost
from .goals import Goal, ZeroShotMarginGoal
from ..options import TextOptions
from .recipe_specs import RECIPE_SPECS
from .recipes import RECIPES, build_text_attack


def goal_images(ctx: AttackContext, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``per_class`` clean images of each class from ``ctx.attack_images`` (the first ones, in order)."""
    images, labels = getattr(ctx, "attack_images", None), getattr(ctx, "attack_labels", None)
    if images is None or labels is None or len(images) == 0:
        raise ConfigError(
            "text_goal=zero-shot-margin needs a few clean labelled images in the attack context "
            "(AttackContext.attack_images / attack_labels); use text_goal=embedding-kl otherwise"
        )
    labels = torch.as_tensor(labels).long().cpu()
    keep, seen = [], {}
    for i, label in enumerate(labels.tolist()):
        if seen.get(label, 0) < per_class:
            keep.append(i)
            seen[label] = seen.get(label, 0) + 1
    index = torch.tensor(keep)
    return images[index], labels[index]


class ClassPromptAttack:
    """Attacks ``ctx.prompts`` with a text-attack recipe and keeps the adversarial classifier."""

    def __init__(self, recipe: str, options: TextOptions | None = None) -> None:
        if recipe not in RECIPES:
            raise ConfigError(f"unknown text-attack recipe {recipe!r}; known: {', '.join(RECIPES)}")
        self.recipe = recipe
        options = (options or TextOptions()).validated()
        self.words, self.candidates = options.text_words, options.text_candidates
        self.goal_name = options.text_goal
        self.goal_images_per_class = options.text_goal_images
        self.mlm = options.mlm
        self.chunk = options.text_chunk
        self.protect_classnames = options.protect_classnames
        self.min_similarity = options.min_similarity
        self.seed = 0
        self.results: list[TextAttackResult] | None = None
        self.attacker_description: dict[str, Any] = {}
        self.cost = AttackCost()
        self._classifier: ZeroShotClassifier | None = None

    # ------------------------------------------------------------------ running
    def prepare(self, ctx: AttackContext) -> None:
        if not ctx.prompts or not ctx.prompts[0]:
            raise ConfigError("text attack: there are no class prompts to attack (empty class or template list)")
        validate_templates(ctx.templates)  # a template without '{}' is an error here too, not a silent no-op
        self.ctx = ctx
        self.seed = int(ctx.seed)  # the run's seed drives the typo generator
        self.results = None
        self._classifier = None

    def _goal(self) -> str | Goal:
        if self.goal_name != ZeroShotMarginGoal.name:
            return self.goal_name
        ctx = self.ctx
        images, labels = goal_images(ctx, self.goal_images_per_class)
        with eval_mode(ctx.model), torch.no_grad():
            features = torch.cat([
                ctx.model.encode_image(images[s : s + 64].to(ctx.device), normalize=True)
                for s in range(0, len(images), 64)
            ])
        return ZeroShotMarginGoal(ctx.model, features, labels.to(ctx.device), len(ctx.prompts), len(ctx.prompts[0]))

    def build_attacker(self) -> TextAttacker:
        extra = []
        if self.protect_classnames:
            extra.append(ClassNameConstraint(self.ctx.classes, prompt_classes(self.ctx.prompts)))
        return build_text_attack(
            self.recipe, self.ctx.model, max_words=self.words, candidates=self.candidates,
            mlm=self.mlm, goal=self._goal(), seed=self.seed, chunk_size=self.chunk,
            min_similarity=self.min_similarity, extra_constraints=extra,
        )

    def ensure(self) -> None:
        """Run the attack if it has not run (nor been restored) yet."""
        if self.results is not None:
            return
        # the chunk size is left out on purpose: it changes the cost, never the prompts
        key = ("class-prompt-attack", self.recipe, self.words, self.candidates, self.goal_name,
               self.goal_images_per_class, self.mlm, self.seed, self.protect_classnames, self.min_similarity)
        if key in self.ctx.shared:  # the same text attack already ran in this evaluation (e.g. for sep)
            self.results, self.attacker_description, self.cost = self.ctx.shared[key]
            return
        attacker = self.build_attacker()
        flat = [p for per_class in self.ctx.prompts for p in per_class]
        self.results = attacker.attack(flat, progress=self.ctx.progress)
        self.attacker_description = attacker.describe()
        self.cost = attacker.last_cost
        self.ctx.shared[key] = (self.results, self.attacker_description, self.cost)

    # ------------------------------------------------------------------ results
    @property
    def adversarial_prompts(self) -> list[list[str]]:
        self.ensure()
        per_class = len(self.ctx.prompts[0])
        flat = [r.perturbed for r in self.results]
        return [flat[c * per_class : (c + 1) * per_class] for c in range(len(self.ctx.prompts))]

    @property
    def classifier(self) -> ZeroShotClassifier:
        """The zero-shot classifier on the adversarial prompts (encoded once)."""
        if self._classifier is None:
            with eval_mode(self.ctx.model), torch.no_grad():
                self._classifier = self.ctx.classifier.with_prompts(self.adversarial_prompts)
        return self._classifier

    def describe(self) -> dict[str, Any]:
        self.ensure()
        per_class = len(self.ctx.prompts[0])
        classes = list(self.ctx.classes)
        prompts = [
            {"class": classes[i // per_class] if i // per_class < len(classes) else i // per_class,
             "template_index": i % per_class, **r.to_dict(),
             "collides_with": collisions(r.original, r.perturbed, i // per_class, classes)}
            for i, r in enumerate(self.results)
        ]
        n_changed = sum(1 for r in self.results if r.n_changed > 0)
        n_collisions = sum(1 for p in prompts if p["collides_with"])
        block: dict[str, Any] = {
            "text_attack": self.recipe,
            "text_words": self.words,
            "text_candidates": self.candidates,
            "text_goal": self.goal_name,
            "mlm": self.mlm if RECIPE_SPECS[self.recipe].needs_mlm else None,
            "attacker": self.attacker_description,
            "n_prompts": len(self.results),
            "n_prompts_changed": n_changed,
            "words_changed": sum(r.n_changed for r in self.results),
            "queries": sum(r.queries for r in self.results),
            "n_prompts_truncated": sum(1 for r in self.results if r.truncated),
            "protect_classnames": self.protect_classnames,
            "min_similarity": self.min_similarity,
            "class_name_collisions": n_collisions,
            "cost": self.cost.to_dict(),
            "prompts": prompts,
        }
        warnings = []
        if n_changed == 0:
            warnings.append(
                "the text attack changed no prompt (no acceptable candidate improved the goal): "
                "its accuracy is the clean accuracy, not a robustness measurement"
            )
        if n_collisions:
            warnings.append(
                f"{n_collisions} adversarial prompt(s) now name another class (see collides_with): the attack "
                "merged classes rather than paraphrasing prompts; --protect-classnames forbids it"
            )
        if block["n_prompts_truncated"]:
            warnings.append(f"{block['n_prompts_truncated']} prompt(s) exceed the model's context and were truncated")
        block["warnings"] = warnings
        return block

    def state_dict(self) -> dict[str, Any]:
        self.ensure()
        return {"recipe": self.recipe, "results": [r.to_dict() for r in self.results],
                "attacker": self.attacker_description, "cost": self.cost.to_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = [TextAttackResult.from_dict(r) for r in state.get("results", [])]
        flat = [p for per_class in self.ctx.prompts for p in per_class]
        if [r.original for r in saved] != flat:
            raise ConfigError(
                "the saved adversarial prompts do not match this run's class prompts "
                "(classes or templates changed since the interrupted run); start a new run"
            )
        self.results = saved
        self.attacker_description = dict(state.get("attacker", {}))
        self.cost = AttackCost.from_dict(state.get("cost"))
        self._classifier = None

