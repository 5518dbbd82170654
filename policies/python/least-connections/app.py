"""Least-connections weighting in Python: the same policy as the Rust example
`examples/least-connections`, for comparison (weight inversely proportional to load, where
an active connection counts as 256 inactive ones; `max-weight` parameter, default 100)."""

from componentize_py_types import Err
from wit_world import WitWorld
from wit_world.imports import types
from wit_world.imports.host import Level, log


def param(inp: types.Input, key: str, default: str) -> str:
    value = default
    for k, v in inp.params:
        if k == key:
            value = v
    return value


def load(s: types.RealServer) -> int:
    return s.active_conns * 256 + s.inactive_conns


class WitWorld(WitWorld):
    def evaluate(self, input: types.Input) -> types.Decision:
        raw = param(input, "max-weight", "100")
        try:
            top = int(raw)
        except ValueError:
            raise Err(f"parameter max-weight: invalid value {raw!r}")
        if not 1 <= top <= 65535:
            raise Err(f"parameter max-weight: {top} is not in 1..=65535")
        live = [s for s in input.servers if s.weight > 0]
        if not live:
            return types.Decision([], None, None, "no real server in service")
        low = min(load(s) for s in live)
        weights = []
        for s in live:
            num, den = top * (low + 1), load(s) + 1
            weights.append(types.WeightChange(s.name, max(1, (num + den // 2) // den)))
        log(Level.DEBUG, f"{len(live)} servers, lowest load {low}")
        return types.Decision(
            weights, None, None, f"least-connections over {len(live)} servers, lowest load {low}"
        )
