"""``opsmind rca rank``: rank the likely root-cause services of a fault from a metrics CSV alone."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from opsmind.cli.options import finite
from opsmind.rca.frame import MetricFrame, RcaInputError, read_csv
from opsmind.rca.learn_graph import learn_graph
from opsmind.rca.ranker import rank

rca_app = typer.Typer(no_args_is_help=True, help="Root-cause analysis.")


def read_graph(path: Path) -> nx.DiGraph:
    """A dependency graph from JSON: ``{"caller": ["callee", ...], ...}`` (as ``incidents.topology``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RcaInputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RcaInputError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(c, str) for c in v) for v in data.values()
    ):
        raise RcaInputError(f'{path}: expected {{"caller": ["callee", ...], ...}}')
    graph = nx.DiGraph()
    for caller, callees in data.items():
        graph.add_node(caller)
        graph.add_edges_from((caller, c) for c in callees)
    return graph


def choose_graph(option: str, frame: MetricFrame, fault_time: float) -> nx.DiGraph | None:
    if option == "none":
        return None
    if option == "learned":
        return learn_graph(frame, fault_time)
    return read_graph(Path(option))


@rca_app.command("rank")
def rca_rank(
    metrics: Path = typer.Option(
        ..., "--metrics", help="CSV with a 'time' column (Unix seconds) and columns named <service>_<metric>"
    ),
    fault_time: float = typer.Option(
        ..., "--fault-time", callback=finite, help="when the fault was detected, Unix seconds"
    ),
    top: int = typer.Option(5, "--top", min=1, help="how many services to print"),
    json_out: bool = typer.Option(False, "--json", help="print a JSON list of {service, score, evidence}"),
    graph: str = typer.Option(
        "none",
        "--graph",
        help="dependency graph: 'none', 'learned' (from the metrics before the fault time) or a JSON "
        'file {"caller": ["callee", ...]}',
    ),
) -> None:
    """Rank services by how much, and how early, their metrics changed at the fault time."""
    err = Console(stderr=True)
    try:
        frame = read_csv(metrics)
        causes = rank(frame, fault_time, choose_graph(graph, frame, fault_time))[:top]
    except (RcaInputError, ValueError) as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
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
