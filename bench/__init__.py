"""Benchmarks, fault injection and soak runs of the whole suite (issue 7).

``make bench`` / ``make faults`` / ``make soak`` call :mod:`bench.run`, :mod:`bench.faults`
and :mod:`bench.soak`. Every figure is measured against its baseline in the same run, on
the same machine, on a private Kafka + PostgreSQL started for the run (:mod:`bench.stack`).
"""
