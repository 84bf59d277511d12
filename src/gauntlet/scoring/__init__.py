"""Scoring under the protocol: metrics, the paired bootstrap, the gate, and the report they make.

`metrics`, `bootstrap` and `gate` shape a score and its verdict (the evaluation key hashes them);
`report` renders tables, pages and plots; `compare` says whether two results may be compared.
"""
