"""Bridges to other systems, each imported only when used (their libraries are optional extras).

* :mod:`codecprim.integrations.ray`: :func:`codecprim.data.write_shards` as a Ray Data pipeline
  (``pip install codecprim[ray]``).
"""
