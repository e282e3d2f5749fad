"""What a run does with each record, one object per kind of target: ``TextTask`` (one next-token or
class target per text) and ``ResponseTask`` (a causal LM's whole answer, METHOD.md "Responses of
causal LMs").

A task gives, for a batch of records (``Record``: what a reader made of each input record):

- ``problem``: why a record cannot reach the model (a ``RecordError``, dead-lettered), checked
  before anything is encoded, with the same reasons in ``annotate`` and ``evaluate``;
- ``score``: encode and score the records on a ``BatchEngine`` (``annotate``), per-record failures
  kept in the result's ``errors``;
- ``token_rows``, ``document_rows`` and their schemas: the scored records as output tables;
- ``evaluate``: the faithfulness of every method on each record (``evaluate``).

``make_task`` picks the task a run's options ask for; the handlers call it and never ask which
one they hold. A new kind of target is a new task here (and its tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from normxlogit.engine import BatchEngine, OnBucket, ScoredBatch, ScoredResponses
from normxlogit.errors import RecordError
from normxlogit.evaluation import EvaluationOptions, evaluate_encoded
from normxlogit.faithfulness import DocFaithfulness
from normxlogit.loading import ScoringModel
from normxlogit.plausibility import rationale_words
from normxlogit.response_evaluation import ResponseEvaluationOptions, evaluate_response_items
from normxlogit.response_spec import ResponseKind, ResponseSpec
from normxlogit.schema import (
    document_rows,
    document_schema,
    response_document_rows,
    response_token_rows,
    token_rows,
    token_schema,
)
from normxlogit.targets import resolve_target

MISSING_TARGET = "missing_target"
_MISSING_TARGET_MESSAGE = (
    "the record's target field is missing, null or blank; --target-field needs a target for every "
    "record (the prediction is never used in its place)"
)
# resolve_target's reasons, renamed for a gold label.
_LABEL_REASONS = {"unknown_target": "unknown_label", "multi_token_target": "multi_token_label"}


class Record(Protocol):
    """One input record as a reader made it (``transforms.records.SourceRecord``); a field the
    record lacks holds the reader's marker of an absent field (the task's ``missing``)."""

    doc_id: str
    source: str
    text: Any
    target: Any
    response: Any
    messages: Any
    rationale: Any


Evaluated = DocFaithfulness | RecordError


def _blank(value: Any, missing: Any) -> bool:
    """A field value that is missing, null or blank."""
    return value is missing or value is None or (isinstance(value, str) and not value.strip())


def _ids(records: Sequence[Record]) -> tuple[list[str], list[str]]:
    return [r.doc_id for r in records], [r.source for r in records]


@dataclass(frozen=True)
class TextTask:
    """One target per text: the prediction, a run-wide ``--target`` or each record's own target.

    Attributes:
        missing: the reader's marker of a field a record lacks.
        targets_from_records: each record names its own target (``--target-field``); a record
            whose target is missing, null or blank is a ``missing_target`` problem, never given
            the prediction instead.
        with_layers: token rows carry the layer-wise list columns.
        evaluation: what ``evaluate`` compares (methods, seed, Integrated Gradients steps, budget).
    """

    missing: Any
    targets_from_records: bool = False
    with_layers: bool = False
    evaluation: EvaluationOptions = field(default_factory=EvaluationOptions)

    def problem(self, record: Record) -> RecordError | None:
        """``missing_target`` when the record must name its target and does not, else None."""
        if self.targets_from_records and _blank(record.target, self.missing):
            return RecordError(MISSING_TARGET, _MISSING_TARGET_MESSAGE)
        return None

    def score(
        self, engine: BatchEngine, records: Sequence[Record], on_bucket: OnBucket | None
    ) -> ScoredBatch:
        """Encode and score the texts in one engine call (targets: each record's own, else the run's)."""
        return engine.score(
            [r.text for r in records],
            [None if r.target is self.missing else r.target for r in records],
            on_bucket=on_bucket,
        )

    def token_schema(self) -> pa.Schema:
        return token_schema(with_layers=self.with_layers)

    def document_schema(self, keep_fields: Sequence[str] = ()) -> pa.Schema:
        return document_schema(keep_fields)

    def token_rows(self, scored: ScoredBatch, done: Sequence[Record]) -> pa.RecordBatch:
        """Token rows of the scored records (``done``: in ``scored.index`` order)."""
        return token_rows(scored, *_ids(done), with_layers=self.with_layers)

    def document_rows(
        self, scored: ScoredBatch, done: Sequence[Record], kept: Mapping[str, Sequence[Any]]
    ) -> pa.RecordBatch:
        """Document rows of the scored records, with the kept fields' values."""
        return document_rows(scored, *_ids(done), [r.text for r in done], kept)

    def gold_label(self, record: Record, sm: ScoringModel) -> int:
        """The record's gold label as a class id (classifiers) or a single token id (causal LMs).

        Raises:
            RecordError: ``no_label`` (missing, null or blank), ``unknown_label``, ``multi_token_label``.
        """
        if _blank(record.target, self.missing):
            raise RecordError("no_label", "the record has no gold label (missing, null or blank label field)")
        try:
            return int(resolve_target(record.target, sm.model, sm.tokenizer, sm.adapter))
        except RecordError as err:
            raise RecordError(_LABEL_REASONS.get(err.reason, err.reason), f"gold label: {err}") from err

    def evaluate(
        self, engine: BatchEngine, records: Sequence[Record], on_bucket: OnBucket | None
    ) -> tuple[list, list[Evaluated]]:
        """(the records' encodings, their faithfulness or ``RecordError``), in record order: a text
        that cannot be encoded or whose gold label cannot be resolved keeps its ``RecordError``; so does
        one whose rationale is malformed, when plausibility is measured (a missing, null or blank
        rationale, e.g. an empty CSV cell, is not an error: the record is measured for faithfulness
        and counted as without one)."""
        items = engine.encode([r.text for r in records])
        golds: list[int | None] = [None] * len(records)
        rationales: list | None = [None] * len(records) if self.evaluation.plausibility else None
        for i, record in enumerate(records):
            if not isinstance(items[i], RecordError):
                try:
                    golds[i] = self.gold_label(record, engine.model)
                    if rationales is not None and not _blank(record.rationale, self.missing):
                        rationales[i] = rationale_words(record.rationale, record.text)
                except RecordError as err:
                    items[i] = err
        ids = [r.doc_id for r in records]
        return items, evaluate_encoded(engine, items, golds, ids, self.evaluation, on_bucket, rationales)


@dataclass(frozen=True)
class ResponseTask:
    """A causal LM's whole answer: each token's score sums its NormXLogit over the answer's steps.

    Attributes:
        spec: where the response comes from.
        missing: the reader's marker of a field a record lacks.
        step_scores: token rows keep each token's score at every step (``step_scores`` column).
        evaluation: what ``evaluate`` compares on responses (methods, seed, budget).
    """

    spec: ResponseSpec
    missing: Any
    step_scores: bool = False
    evaluation: ResponseEvaluationOptions = field(default_factory=ResponseEvaluationOptions)

    def problem(self, record: Record) -> RecordError | None:
        """Why ``annotate`` cannot score a record's response (``RESPONSE``) or conversation
        (``CHAT``): ``field_problem``'s reasons, or ``nul_bytes`` in the response or a message's
        content."""
        problem = self.field_problem(record)
        if problem is not None:
            return problem
        if self.spec.kind is ResponseKind.RESPONSE:
            return _nul_problem(record.response, "response")
        if self.spec.reads_messages:
            return _messages_nul_problem(record.messages)
        return None

    def field_problem(self, record: Record) -> RecordError | None:
        """Why a record's response (``RESPONSE``) or conversation (``CHAT``) cannot be encoded, in
        ``annotate`` and ``evaluate`` alike.

        Returns:
            None, or a ``RecordError``: ``missing_response``, ``null_response``,
            ``non_string_response``, ``missing_messages``, ``null_messages``. What only the encoders
            can judge (an empty response, malformed messages, no final assistant message) comes
            back from them.
        """
        if self.spec.kind is ResponseKind.RESPONSE:
            return _text_problem(record.response, "response", self.missing)
        if self.spec.reads_messages:
            return _messages_problem(record.messages, self.missing)
        return None

    def encode(
        self,
        engine: BatchEngine,
        records: Sequence[Record],
        batch_tokens: int | None = None,
        on_bucket: OnBucket | None = None,
    ) -> list:
        """The records' prompt/response pairs as the model reads them (a chat, or with
        ``chat_template`` a plain prompt as a user message, through the tokenizer's template; a
        generated answer on its prompt, generated in buckets of ``batch_tokens``, None: the
        engine's; ``on_bucket`` hears of each generated bucket), ``RecordError`` for a bad one."""
        spec = self.spec
        if spec.kind is ResponseKind.CHAT:
            return engine.encode_chats([r.messages for r in records], spec.system_prompt)
        if spec.kind is ResponseKind.GENERATE and spec.through_template:
            chats = [r.messages if spec.reads_messages else _user_turn(r.text) for r in records]
            return engine.generate_chats(
                chats, spec.max_new_tokens, spec.system_prompt, batch_tokens=batch_tokens, on_bucket=on_bucket
            )
        if spec.kind is ResponseKind.GENERATE:
            texts = [r.text for r in records]
            return engine.generate(texts, spec.max_new_tokens, batch_tokens=batch_tokens, on_bucket=on_bucket)
        if spec.chat_template:
            chats = [[*_user_turn(r.text), {"role": "assistant", "content": r.response}] for r in records]
            return engine.encode_chats(chats, spec.system_prompt)
        return engine.encode_responses([r.text for r in records], [r.response for r in records])

    def score(
        self, engine: BatchEngine, records: Sequence[Record], on_bucket: OnBucket | None
    ) -> ScoredResponses:
        """Encode (or generate), then score every answer in one teacher-forced pass per bucket (each
        step against its foil where the spec has one); ``on_bucket`` hears of generated buckets
        (``GenerationDone``) and scored ones (``BucketDone``)."""
        encoded = self.encode(engine, records, on_bucket=on_bucket)
        return engine.score_responses(encoded, self.step_scores, on_bucket=on_bucket, foil=self.spec.foil)

    def token_schema(self) -> pa.Schema:
        return token_schema(step_scores=self.step_scores)

    def document_schema(self, keep_fields: Sequence[str] = ()) -> pa.Schema:
        return document_schema(keep_fields, responses=True)

    def token_rows(self, scored: ScoredResponses, done: Sequence[Record]) -> pa.RecordBatch:
        """Token rows of the scored pairs (``done``: in ``scored.index`` order)."""
        return response_token_rows(scored, *_ids(done), self.step_scores)

    def document_rows(
        self, scored: ScoredResponses, done: Sequence[Record], kept: Mapping[str, Sequence[Any]]
    ) -> pa.RecordBatch:
        """Document rows of the scored pairs, with the kept fields' values."""
        return response_document_rows(scored, *_ids(done), kept)

    def evaluate(
        self, engine: BatchEngine, records: Sequence[Record], on_bucket: OnBucket | None
    ) -> tuple[list, list[Evaluated]]:
        """(the records' pairs, their faithfulness or ``RecordError``), in record order: a record
        with a ``field_problem`` keeps it and is not encoded.

        NUL bytes in a response or a message are measured, as ``evaluate`` always has (``annotate``
        refuses them: ``problem``).
        """
        items: list = [self.field_problem(r) for r in records]
        ready = [i for i, p in enumerate(items) if p is None]
        encoded = self.encode(engine, [records[i] for i in ready], self.evaluation.batch_tokens)
        for i, item in zip(ready, encoded):
            items[i] = item
        ids = [r.doc_id for r in records]
        return items, evaluate_response_items(engine, items, ids, self.evaluation, on_bucket)


Task = TextTask | ResponseTask


def make_task(
    response: ResponseSpec | None,
    missing: Any,
    *,
    targets_from_records: bool = False,
    with_layers: bool = False,
    step_scores: bool = False,
    evaluation: EvaluationOptions | None = None,
    response_evaluation: ResponseEvaluationOptions | None = None,
) -> Task:
    """The task a run's options ask for: a ``ResponseTask`` for a response run, else a ``TextTask``."""
    if response is not None:
        return ResponseTask(
            response, missing, step_scores, response_evaluation or ResponseEvaluationOptions()
        )
    return TextTask(missing, targets_from_records, with_layers, evaluation or EvaluationOptions())


def _user_turn(text: str) -> list[dict]:
    """A plain prompt as a chat (``--chat-template``): one user message."""
    return [{"role": "user", "content": text}]


def _text_problem(value: object, what: str, missing: Any) -> RecordError | None:
    if value is missing:
        return RecordError(f"missing_{what}", f"the record has no {what} field")
    if value is None:
        return RecordError(f"null_{what}", f"the {what} field is null")
    if not isinstance(value, str):
        return RecordError(
            f"non_string_{what}", f"the {what} field holds a {type(value).__name__}, not a string"
        )
    return None


def _nul_problem(value: str, what: str) -> RecordError | None:
    if "\x00" in value:
        return RecordError("nul_bytes", f"the {what} contains NUL (\\x00) bytes")
    return None


def _messages_problem(messages: object, missing: Any) -> RecordError | None:
    if messages is missing:
        return RecordError("missing_messages", "the record has no messages field")
    if messages is None:
        return RecordError("null_messages", "the messages field is null")
    return None  # a value that is no list of messages: the chat encoder's malformed_messages


def _messages_nul_problem(messages: object) -> RecordError | None:
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)):
        return None
    for k, m in enumerate(messages):
        content = m.get("content") if isinstance(m, Mapping) else None
        if isinstance(content, str) and "\x00" in content:
            return RecordError("nul_bytes", f"the content of message {k} contains NUL (\\x00) bytes")
    return None
