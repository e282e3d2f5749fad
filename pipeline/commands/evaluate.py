"""``normxlogit evaluate``: faithfulness (comprehensiveness, sufficiency) of attribution methods."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace

from normxlogit.pipeline.commands.common import (
    BEAM_EPILOG,
    add_corpus_options,
    add_model_options,
    add_system_prompt_options,
    asked_responses,
    field_spec,
    line_input_bytes,
    model_spec,
    non_negative_int,
    positive_int,
    refuse_before_start,
    system_prompt_refusal,
)
from normxlogit.pipeline.options import local_threads, pipeline_options
from normxlogit.pipeline.startup_checks import RunRefused
from normxlogit.response_spec import ResponseSpec

NAME = "evaluate"
DEFAULT_METHODS = "normxlogit,logat,norm,random,gradient_norm,gradient_x_input,integrated_gradients"
DEFAULT_RESPONSE_METHODS = (
    "normxlogit,logat,norm,random,gradient_x_input,gradient_x_input_l2_steps,"
    "normxlogit_logprob,normxlogit_abs,normxlogit_stepnorm"
)
# normxlogit.bootstrap.DEFAULT_REPLICATES and normxlogit.faithfulness.DEFAULT_RANDOM_SEEDS, written
# here so that --help does not import numpy (tests/pipeline/test_evaluate.py checks that they agree).
DEFAULT_BOOTSTRAP = 1000
DEFAULT_RANDOM_SEEDS = 3
DEFAULT_LOO_MAX_TOKENS = 256  # normxlogit.ferret_faithfulness.DEFAULT_LOO_MAX_TOKENS
DEFAULT_IG_STEPS = 50  # normxlogit.baselines.DEFAULT_IG_STEPS


def method_list(value: str) -> tuple[str, ...]:
    """argparse type: comma-separated method names."""
    return tuple(v.strip() for v in value.split(",") if v.strip())


def add_parser(sub) -> argparse.ArgumentParser:
    """The ``evaluate`` subcommand's parser."""
    e = sub.add_parser(
        NAME,
        help="measure the faithfulness of NormXLogit and baseline attributions on a labelled corpus",
        description=(
            "For each record, rank tokens by each method's scores, replace the top (comprehensiveness) "
            "or all but the top (sufficiency) k% of tokens (k = 10..90) with the mask token, and "
            "measure the confidence drop of the original prediction and the accuracy against the gold "
            "label. Writes OUT/summary.json, OUT/results.md, OUT/curves.parquet, OUT/curves.png, "
            "OUT/errors/part-*.jsonl and OUT/manifest.json. Classifiers and causal LMs (the label is "
            "the gold next token). Response mode (--response-field, --messages-field or --generate; "
            "causal LMs, no label): rank the context tokens before each response (chat-template and "
            "special tokens left out and never replaced), replace the top or all but the top k%, and "
            "measure the drop of the response's mean per-token log-probability (teacher forced) and "
            "the share of response tokens still the argmax. summary.json and results.md give each mean "
            "with its 95% document-bootstrap interval and every method's paired difference to random "
            "and to each gradient method, with its interval and p-value; beside them ferret's aopc_compr, "
            "aopc_suff (tokens removed, 10..100%) and taucorr_loo, Carton et al.'s norm_compr and norm_suff "
            "(not in response mode, which has the two AOPCs on the response log-probability), and each "
            "metric's diagnosticity (how often it prefers a method's ranking to a random one)."
        ),
        epilog=BEAM_EPILOG,
    )
    add_corpus_options(e)
    add_model_options(e)
    e.add_argument(
        "--label-field",
        default=None,
        help="record field holding the gold label: a class name or id, or one token for a causal LM "
        "(required unless in response mode)",
    )
    mode = e.add_mutually_exclusive_group()
    mode.add_argument(
        "--response-field",
        default=None,
        help="response mode: record field holding the response to the prompt in --text-field",
    )
    mode.add_argument(
        "--messages-field",
        default=None,
        help="response mode: record field holding an OpenAI-style chat ([{role, content}, ...]) whose "
        "last assistant message is the response; the rest is rendered with the tokenizer's chat template",
    )
    mode.add_argument(
        "--generate",
        type=positive_int,
        default=None,
        metavar="N",
        help="response mode: the model answers each prompt in --text-field greedily (at most N new "
        "tokens) and that answer is measured",
    )
    add_system_prompt_options(e)
    e.add_argument(
        "--methods",
        type=method_list,
        default=None,
        help=f"comma-separated attribution methods to compare (default: {DEFAULT_METHODS}; in response "
        f"mode: {DEFAULT_RESPONSE_METHODS}; integrated_gradients too when named); the gradient "
        'baselines need Captum (response mode: integrated_gradients only): pip install "normxlogit[eval]"',
    )
    e.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seeds both the random baseline (its rankings use seeds SEED..SEED+R-1) and the document "
        "bootstrap of the intervals (default: 0); same seed, same figures",
    )
    e.add_argument(
        "--random-seeds",
        type=positive_int,
        default=DEFAULT_RANDOM_SEEDS,
        metavar="R",
        help=f"rankings the random baseline draws per document; its figures are their mean (default: "
        f"{DEFAULT_RANDOM_SEEDS}; 1: one ranking, as before this option)",
    )
    e.add_argument(
        "--bootstrap",
        type=positive_int,
        default=DEFAULT_BOOTSTRAP,
        metavar="B",
        help=f"document-bootstrap replicates of the 95%% intervals and paired differences (default: "
        f"{DEFAULT_BOOTSTRAP}); p-values resolve to about 2/(B+1)",
    )
    e.add_argument(
        "--ig-steps",
        type=positive_int,
        default=DEFAULT_IG_STEPS,
        help=f"Integrated Gradients steps, each a forward and a backward pass (default: {DEFAULT_IG_STEPS})",
    )
    e.add_argument(
        "--loo-max-tokens",
        type=non_negative_int,
        default=DEFAULT_LOO_MAX_TOKENS,
        metavar="N",
        help=f"taucorr_loo (ferret's Kendall tau of the scores and the leave-one-out drops) costs one "
        f"forward pass per token: texts of more than N rankable tokens get none, and summary.json and "
        f"results.md say how many (default: {DEFAULT_LOO_MAX_TOKENS}; 0: never)",
    )
    e.add_argument(
        "--rationale-field",
        default=None,
        metavar="F",
        help="plausibility (classifiers and next-token runs, not response mode): record field holding a "
        "human rationale, a list of 0/1 per word (words: runs of letters/digits/_ or single punctuation "
        "characters) or of [start, end] character spans; adds auprc_plau, token_f1_plau and "
        "token_iou_plau (ferret's definitions, on words) per method with 95%% intervals. A record without "
        "one is still measured for faithfulness and counted; a malformed one is a dead letter",
    )
    e.add_argument(
        "--rationale-k",
        type=positive_int,
        default=None,
        metavar="K",
        help="words taken as each method's rationale for token_f1_plau and token_iou_plau (ferret's "
        "top_k_rationale; default: each record's own rationale length)",
    )
    e.set_defaults(docs_per_batch=32)
    return e


class EvaluateFlagError(RunRefused):
    """Flags that do not go together in an evaluate run."""


def response_mode(args: argparse.Namespace) -> ResponseSpec | None:
    """Where response mode takes each response from, or None for the paper's metrics on a labelled
    corpus (the response flags are mutually exclusive in the parser).

    Raises:
        EvaluateFlagError: neither or both of --label-field and a response mode; --large-model or
            --model-copies.
    """
    response = next(iter(asked_responses(args)), None)
    if (response is None) == (args.label_field is None):
        raise EvaluateFlagError(
            "give --label-field (the paper's metrics on a labelled corpus) or one of --response-field, "
            "--messages-field, --generate (response mode, no label), not both"
            if response
            else "--label-field is required (or a response mode: --response-field, --messages-field, "
            "--generate)"
        )
    refusal = system_prompt_refusal(args, response)
    if refusal is not None:
        raise EvaluateFlagError(refusal)
    if response is not None and args.rationale_field is not None:
        raise EvaluateFlagError(
            "--rationale-field measures plausibility of labelled texts, not in response mode"
        )
    if args.rationale_k is not None and args.rationale_field is None:
        raise EvaluateFlagError("--rationale-k needs --rationale-field")
    if args.large_model or args.model_copies:
        # The handler hands the model object to evaluate_batch; a shared-process proxy cannot.
        raise EvaluateFlagError("--large-model and --model-copies are not supported by evaluate")
    return response


def run(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Run the evaluate pipeline and print its counts and summary table.

    Raises:
        EvaluateFlagError, ModelPathError, DefaultModelMissing, RunRefused: clashing flags and the
            refusals of ``refuse_before_start``, before torch, transformers and Beam are imported.
    """
    response = response_mode(args)
    refuse_before_start(args)

    from apache_beam.io.filesystems import FileSystems

    from normxlogit.baselines import MissingExtraError
    from normxlogit.bootstrap import Resampling
    from normxlogit.evaluation import EvaluationError, EvaluationOptions
    from normxlogit.pipeline.evaluate import EvaluateConfig, run_evaluate
    from normxlogit.response_evaluation import ResponseEvaluationOptions
    from normxlogit.transforms.evaluate_handler import EvaluateHandlerOptions
    from normxlogit.transforms.layout import TABLE
    from normxlogit.transforms.writers import join

    response_evaluation = None
    if response is not None:
        response_evaluation = ResponseEvaluationOptions(
            methods=args.methods or method_list(DEFAULT_RESPONSE_METHODS),
            seed=args.seed,
            batch_tokens=args.batch_tokens,
            random_seeds=args.random_seeds,
            ig_steps=args.ig_steps,
        )
    fields = replace(
        field_spec(args, target_field=args.label_field),
        response_field=args.response_field,
        messages_field=args.messages_field,
        rationale_field=args.rationale_field,
    )
    options = pipeline_options(beam_args, threads=local_threads(args.device))
    cfg = EvaluateConfig(
        inputs=tuple(args.inputs),
        output=args.output,
        spec=model_spec(args),
        options=EvaluateHandlerOptions(
            evaluation=EvaluationOptions(
                methods=args.methods or method_list(DEFAULT_METHODS),
                seed=args.seed,
                ig_steps=args.ig_steps,
                batch_tokens=args.batch_tokens,
                random_seeds=args.random_seeds,
                loo_max_tokens=args.loo_max_tokens,
                plausibility=args.rationale_field is not None,
                rationale_k=args.rationale_k,
            ),
            max_length=args.max_length,
            docs_per_batch=args.docs_per_batch,
            response=response,
            response_evaluation=response_evaluation,
            input_bytes=line_input_bytes(args.inputs, options),
        ),
        fields=fields,
        overwrite=args.overwrite,
        resampling=Resampling(replicates=args.bootstrap, seed=args.seed),
    )
    try:
        counts = run_evaluate(cfg, options)
    except (EvaluationError, MissingExtraError) as err:
        print(f"normxlogit {NAME}: error: {err}", file=sys.stderr)
        return 2
    print(f"normxlogit: wrote {args.output}: " + ", ".join(f"{k}={v:,}" for k, v in asdict(counts).items()))
    with FileSystems.open(join(args.output, TABLE)) as fh:
        print(fh.read().decode("utf-8"), end="")
    return 0
