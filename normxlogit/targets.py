"""Targets and foils: a user's class name, class id or token string, mapped to the id to attribute.

A value the model cannot have is the record's ``RecordError`` (``unknown_target``,
``multi_token_target``); a run-wide ``--target`` or ``--foil`` is checked once before a run
(``check_run_targets``).
"""

from __future__ import annotations

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from normxlogit.errors import RecordError
from normxlogit.heads import HeadAdapter, is_regression


def resolve_target(
    value: str | int | None,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    adapter: HeadAdapter,
) -> int | None:
    """Map a user's target (class name, class id, or token string) to an id.

    Returns None for None (the model's own prediction).

    Raises:
        RecordError: ``unknown_target`` for a class the model does not have or a token id outside
            the vocabulary, ``multi_token_target`` for an LM target that is not exactly one token.
    """
    if value is None:
        return None
    if adapter.task == "classification":
        if is_regression(model, adapter):
            raise RecordError("unknown_target", "a regression head has no classes to target")
        label2id = {str(k): int(v) for k, v in (model.config.label2id or {}).items()}
        num = model.config.num_labels
        if str(value) in label2id:
            return label2id[str(value)]
        if isinstance(value, (int, np.integer)) or str(value).lstrip("-").isdigit():
            if 0 <= int(value) < num:
                return int(value)
        raise RecordError(
            "unknown_target",
            f"target {value!r} is neither a class name ({', '.join(label2id)}) nor an id in 0..{num - 1}",
        )
    if isinstance(value, (int, np.integer)):
        # An id with no row in the output matrix would crash the whole batch (or, if negative,
        # silently fall back to the prediction); it is this record's error.
        rows = model.get_output_embeddings().weight.shape[0]
        if not 0 <= int(value) < rows:
            raise RecordError("unknown_target", f"token id {value} is outside the vocabulary (0..{rows - 1})")
        return int(value)
    ids = tokenizer.encode(str(value), add_special_tokens=False)
    if len(ids) != 1:
        pieces = tokenizer.convert_ids_to_tokens(ids)
        raise RecordError(
            "multi_token_target",
            f"target {value!r} is {len(ids)} tokens {pieces}; NormXLogit attributes one token. "
            f"Give a single token (mind the leading space, e.g. ' Paris').",
        )
    return int(ids[0])


class TargetResolver:
    """``resolve_target`` once per distinct value: a run-wide target or foil is the same for every
    record. A bad value raises a fresh ``RecordError`` for each record that names it."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, adapter: HeadAdapter):
        self._args = (model, tokenizer, adapter)
        self._seen: dict[tuple, int | None | RecordError] = {}

    def __call__(self, value: str | int | None) -> int | None:
        key = (type(value), value)  # the type too: 5 == 5.0 as keys, but 5.0 is no token id
        try:
            hit = self._seen[key]
        except KeyError:
            hit = self._seen[key] = self._resolve(value)
        except TypeError:  # an unhashable value (a list from a JSON field) is not memoised
            hit = self._resolve(value)
        if isinstance(hit, RecordError):
            raise RecordError(hit.reason, str(hit))
        return hit

    def _resolve(self, value: str | int | None) -> int | None | RecordError:
        try:
            return resolve_target(value, *self._args)
        except RecordError as err:
            return err


class TargetError(ValueError):
    """A run-wide target or foil that the model cannot have: a whole-input problem, caught before a run."""


def check_run_targets(sm, target: str | int | None, foil: str | int | None) -> None:
    """Resolve a run-wide ``--target`` and ``--foil`` as every record would.

    Args:
        sm: a ``ScoringModel`` (``loading.load_skeleton`` is enough: no weights are read).

    Raises:
        TargetError: naming the flag, the value and why (the classes or the tokens it splits into).
    """
    for flag, value in (("--target", target), ("--foil", foil)):
        try:
            resolve_target(value, sm.model, sm.tokenizer, sm.adapter)
        except RecordError as err:
            raise TargetError(f"{flag} {value!r} cannot be attributed with this model: {err}") from err
