"""Corpus findings from finished runs: word scores, slices, lexicons and document-bootstrap intervals.

Reads the Parquet of a finished ``normxlogit annotate`` run (``transforms/layout.py``) one row group
at a time and computes with Arrow and numpy: no Beam, no torch, so the commands built on it
(``normxlogit stats``, ``normxlogit compare``) start in a fraction of a second.

    words.py         word-level scores of a run (``word_index`` words, tokenizer-independent)
    bootstrap.py     the document bootstrap: seeded weights, percentile intervals, p- and q-values
    slices.py        the corpus and the slices of ``--by`` fields; documents by key
    lexicon.py       categories of words from a JSON or CSV file
    observations.py  a chunk of words summed per (slice, word, document)
    tally.py         exact counts and sums per (slice, word), slice and category
    replicates.py    bootstrap sums, a block of words per pass over the run
    stats.py         ``normxlogit stats``: words.parquet, lexicon.parquet, summary.json
"""
