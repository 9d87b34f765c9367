"""``opsmind rca rank``: rank the likely root-cause services of a fault from a metrics CSV alone."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from opsmind.rca.frame import RcaInputError, read_csv
from opsmind.rca.ranker import rank

rca_app = typer.Typer(no_args_is_help=True, help="Root-cause analysis.")


@rca_app.command("rank")
def rca_rank(
    metrics: Path = typer.Option(
        ..., "--metrics", help="CSV with a 'time' column (Unix seconds) and columns named <service>_<metric>"
    ),
    fault_time: float = typer.Option(..., "--fault-time", help="when the fault was detected, Unix seconds"),
    top: int = typer.Option(5, "--top", min=1, help="how many services to print"),
    json_out: bool = typer.Option(False, "--json", help="print a JSON list of {service, score, evidence}"),
) -> None:
    """Rank services by how much, and how early, their metrics changed at the fault time."""
    err = Console(stderr=True)
    try:
        frame = read_csv(metrics)
        causes = rank(frame, fault_time)[:top]
    except (RcaInputError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if frame.skipped:
        err.print(
            f"skipped {len(frame.skipped)} columns not named <service>_<metric>: "
            + ", ".join(frame.skipped[:5])
        )
    if json_out:
        print(json.dumps([c.as_json() for c in causes]))
        return
    table = Table(title=f"likely root causes at {fault_time:.0f}")
    for col in ("#", "service", "score", "evidence"):
        table.add_column(col)
    for i, c in enumerate(causes, start=1):
        table.add_row(str(i), c.service, f"{c.score:.2f}", c.evidence)
    Console().print(table)
