"""The corpus views of a response run, in place of the Predictions panel (the model's own first
token says little about a whole answer): the least likely responses by mean and by summed
log-probability, and the least likely response tokens with their document, step and foil.

The ranking (mean or sum) is chosen with two radio buttons and CSS alone, as in the Findings
section. A row of a document the page embeds can be clicked: the page's script shows that document
and, for a token, selects its step.
"""

from __future__ import annotations

import math

from normxlogit.display import visible_token
from normxlogit.pipeline.report.escaping import esc, iso
from normxlogit.pipeline.report.response_ranking import LowToken, ResponseLogprob, ResponseRanking

RESPONSE_CSS = """
#response-rank-mean:checked ~ .rankings .by-total,
#response-rank-total:checked ~ .rankings .by-mean{display:none}
#corpus tr.jump{cursor:pointer}
#corpus tr.jump:hover{background:#eef3f8}
"""


def shown_token(token: str | None) -> str:
    """A token as ``show`` lists it (``␣`` for edge spaces, ``\\n`` for a newline), isolated."""
    return "" if token is None else f'<code class="lit">{esc(visible_token(token))}</code>'


def _jump(doc_id: str, sampled: set[str], step: int | None = None) -> str:
    """The attributes of a row that opens its document on the page (when the page embeds it)."""
    if doc_id not in sampled:
        return ""
    at = "" if step is None else f' data-step="{step}"'
    what = "this document" if step is None else "this document at this step"
    return f' class="jump" data-doc="{esc(doc_id)}"{at} title="show {what}"'


def _logprob_rows(entries: list[ResponseLogprob], sampled: set[str]) -> str:
    return "".join(
        f'<tr{_jump(r.doc_id, sampled)}><td class="num">{rank}</td><td class="label">{iso(r.doc_id)}</td>'
        f'<td class="num">{r.n_tokens:,}</td><td class="num">{r.total:.4g}</td>'
        f'<td class="num">{r.mean:.4g}</td>'
        f'<td class="num">{math.exp(r.mean):.3g}</td></tr>'
        for rank, r in enumerate(entries, 1)
    )


def logprob_view(ranking: ResponseRanking, sampled: set[str]) -> str:
    """The least likely responses, lowest first, by mean per-token log p or by its sum."""
    head = (
        '<tr><th class="num">#</th><th>document</th><th class="num">tokens</th><th class="num">sum log p</th>'
        '<th class="num">mean log p</th><th class="num">p per token</th></tr>'
    )
    tables = "".join(
        f'<table class="by-{key}">{head}{_logprob_rows(entries, sampled)}</table>'
        for key, entries in (("mean", ranking.by_mean), ("total", ranking.by_total))
    )
    return f"""<div id="response-logprob"><h3>Response log-probability</h3>
<p class="muted">{ranking.responses:,} responses, {ranking.tokens:,} response tokens in the run; the
{len(ranking.by_mean)} least likely, lowest first. Sum: log p of the whole response given its context;
mean: per token (p per token is its exponential), which compares responses of any length.</p>
<input type="radio" name="response-rank" id="response-rank-mean" class="rank" checked>
<label for="response-rank-mean">by mean log p</label>
<input type="radio" name="response-rank" id="response-rank-total" class="rank">
<label for="response-rank-total">by sum log p</label>
<div class="rankings">{tables}</div></div>"""


def _token_row(rank: int, t: LowToken, sampled: set[str], foil: bool) -> str:
    before = "" if t.before is None else f'<code class="lit">{esc(visible_token(t.before))}</code>'
    return (
        f'<tr{_jump(t.doc_id, sampled, t.step)}><td class="num">{rank}</td><td>{shown_token(t.token)}</td>'
        f'<td class="num">{t.logprob:.4g}</td><td class="num">{math.exp(t.logprob):.3g}</td>'
        + (f"<td>{shown_token(t.foil)}</td>" if foil else "")
        + f'<td class="label">{iso(t.doc_id)}</td><td class="num">{t.step}</td>'
        f'<td class="num">{t.position}</td>'
        f'<td class="wide">{before}</td></tr>'
    )


def _how_many(shown: int, total: int) -> str:
    which = (
        f"All {total:,} response tokens of the run"
        if shown == total
        else (f"The {shown:,} of the run's {total:,} response tokens with the lowest log-probability")
    )
    return f"{which}, lowest <code>target_logprob</code> first"


def lowest_tokens_view(ranking: ResponseRanking, sampled: set[str]) -> str:
    """The response tokens with the lowest log-probability in the run, with where they are."""
    foil = ranking.has_foil
    rows = "".join(_token_row(rank, t, sampled, foil) for rank, t in enumerate(ranking.lowest, 1))
    foil_note = (
        " Foil: the model's own most likely other token at that step (<code>--foil top</code>)."
        if foil
        else ""
    )
    return f"""<div id="lowest-tokens"><h3>Lowest-probability response tokens</h3>
<p class="muted">{_how_many(len(ranking.lowest), ranking.tokens)}, with their document, the step
that predicts them and their position;
the text before each is the document's.{foil_note} Click a row of a document shown below to see its
step's attribution.</p>
<table><tr><th class="num">#</th><th>token</th><th class="num">log p</th><th class="num">p</th>
{"<th>foil</th>" if foil else ""}<th>document</th><th class="num">step</th><th class="num">position</th>
<th>text before it</th></tr>{rows}</table></div>"""
