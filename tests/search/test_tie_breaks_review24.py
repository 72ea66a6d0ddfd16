"""The two tie-breaks on equal fitness, pinned as documented (search.fitness.ranked, search.evolution).

The evolution ranks genomes of equal fitness by key ascending, the flight pick by key descending.
Neither may change silently: the first feeds every draw a resumed search replays, the second
decides which model a finished search ships. This test fails on either change, so that a change
is made on purpose (and the shipped searches checked with it).
"""

from __future__ import annotations

from typing import Any

from search.evolution import initial_population, next_generation, search_space
from search.fitness import flight_pick, ranked


def test_equal_fitness_goes_to_the_lower_key_in_the_evolution_and_the_greater_in_the_flight_pick(
        tiny_cfg: dict[str, Any]) -> None:
    space = search_space(tiny_cfg)
    population = initial_population(space, 3, 0)
    dev = {"miou": 0.7, "estimated_latency_ms": 10.0, "device": "myriadx-emu"}
    records = {g.key: {"key": g.key, "name": g.key[:8], "status": "ok", "parameters": 100, "fitness": 0.5,
                       "device_metrics": dev} for g in population}
    evo = {**tiny_cfg["evolution"], "population": 3, "elite": 1}
    elite = next_generation(population, records, set(population), space, evo, 1)[0]
    assert elite.key == min(records)
    assert [r["key"] for r in ranked(records.values())] == sorted(records, reverse=True)
    picked = flight_pick(list(records.values()), {**tiny_cfg["fitness"], "latency_limit_ms": 0.0}, lambda *_: None)
    assert picked is not None and picked["key"] == max(records)
