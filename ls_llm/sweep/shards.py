"""Which cells each of `--shard i/n` processes runs (`ls-llm sweep --shard`)."""

from __future__ import annotations

from ls_llm.sweep.config import Cell, SweepConfig

# Relative cost of a cell for sharding, measured on paper_cpu (s/cell: train 75, distill 78 with the teacher
# forward, student alone 48).
_SHARD_COST = {"train": 1.0, "distill": 1.05, "student": 0.65, "teacher": 0.5, "traces": 0.5}


def shard_cells(sweep: SweepConfig, index: int, count: int) -> list[Cell]:
    """Cells of shard `index` of `count`, in sweep order. Cells that need one another (a teacher and its students,
    teachers matched together, a model and the cells continuing from it) form one group; each group goes to the
    shard with the least cost so far, so shards finish close together and a cell never waits on another shard
    but for a pretrained base. The bases go round the shards in turn, first in each shard's list (no cell can start
    before its base, so they are not weighed against the cells), and a cell whose base another shard is pretraining
    waits for it (run_sweep)."""
    cells = sweep.cells()
    bases = [c.cell_id for c in sweep.base_cells()]
    parent = {c.cell_id: c.cell_id for c in cells}

    def root_of(cell_id: str) -> str:
        while parent[cell_id] != cell_id:
            parent[cell_id] = parent[parent[cell_id]]
            cell_id = parent[cell_id]
        return cell_id

    for cell in cells:
        for needed in cell.needs:
            if needed not in bases:
                parent[root_of(cell.cell_id)] = root_of(needed)
    units: dict[str, float] = {}
    for cell in cells:
        if cell.cell_id not in bases:
            units[root_of(cell.cell_id)] = units.get(root_of(cell.cell_id), 0.0) + _SHARD_COST[cell.kind]
    load, owner = [0.0] * count, {base: i % count for i, base in enumerate(bases)}
    for key, cost in units.items():
        owner[key] = min(range(count), key=lambda i: (load[i], i))
        load[owner[key]] += cost
    return [c for c in cells if owner[root_of(c.cell_id)] == index]
