"""Placement picks the cheapest feasible mix and says what it costs and what the alternative would cost;
the price loader validates its table and names the row and column of a mistake."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from opsmind.decide.placement import Demand, Limits, place
from opsmind.decide.prices import InstancePrice, load_prices, parse_prices

SRC = "https://example.com/pricing"


def _price(provider: str, region: str, itype: str, vcpu: int, usd: float, mem: float = 0.0) -> InstancePrice:
    return InstancePrice(provider, region, itype, vcpu, mem or vcpu * 4.0, usd, SRC, date(2024, 6, 1))


OPTIONS = [
    _price("aws", "us-east-1", "m.large", 2, 0.10),
    _price("aws", "us-east-1", "m.xlarge", 4, 0.20),
    _price("gcp", "us-east1", "n.std-4", 4, 0.22),
    _price("azure", "eastus", "d.4", 4, 0.24),
    _price("aws", "ap-south-1", "m.xlarge", 4, 0.12),  # the cheapest, but far from the users
]
LATENCY = {"aws/us-east-1": 15, "gcp/us-east1": 20, "azure/eastus": 18, "aws/ap-south-1": 210}


def test_cheapest_feasible_mix_is_chosen_and_its_cost_shown() -> None:
    demand = Demand(vcpu=10, headroom=0.2, latency_ms=LATENCY)  # 12 vCPU
    p = place(demand, OPTIONS, Limits(max_latency_ms=100))
    assert p.feasible
    assert {(a.location, a.instance_type) for a in p.allocations} <= {
        ("aws/us-east-1", "m.large"),
        ("aws/us-east-1", "m.xlarge"),
    }
    assert p.vcpu == 12 and p.usd_per_hour == pytest.approx(0.60)
    assert p.weights == {"aws/us-east-1": pytest.approx(1.0)}
    # The runner-up avoids aws/us-east-1: 3x gcp at 0.22 = 0.66, and the reasons say so.
    assert p.runner_up_usd_per_hour == pytest.approx(0.66)
    text = p.explain()
    assert "$0.6000/h" in text and "runner-up without aws/us-east-1" in text and "$0.6600/h" in text


def test_latency_limit_excludes_a_cheaper_far_region() -> None:
    demand = Demand(vcpu=8, headroom=0.0, latency_ms=LATENCY)
    near = place(demand, OPTIONS, Limits(max_latency_ms=100))
    assert all(a.region != "ap-south-1" for a in near.allocations)
    assert near.usd_per_hour == pytest.approx(0.40)
    assert any("aws/ap-south-1 excluded: 210 ms" in r for r in near.reasons)
    # With a limit the far region meets, it wins on price: the limit was what kept it out.
    far_ok = place(demand, OPTIONS, Limits(max_latency_ms=250))
    assert {a.location for a in far_ok.allocations} == {"aws/ap-south-1"}
    assert far_ok.usd_per_hour == pytest.approx(0.24)


def test_provider_share_cap_spreads_capacity_and_costs_more() -> None:
    demand = Demand(vcpu=16, headroom=0.0, latency_ms=LATENCY)
    free = place(demand, OPTIONS, Limits(max_latency_ms=100))
    capped = place(demand, OPTIONS, Limits(max_latency_ms=100, max_provider_share=0.5))
    assert free.provider_weights == {"aws": pytest.approx(1.0)}
    assert capped.feasible
    assert max(capped.provider_weights.values()) <= 0.5 + 1e-9
    # Half on aws (0.40), the other half on the cheaper of gcp/azure (2x 0.22).
    assert capped.usd_per_hour == pytest.approx(0.84)
    assert capped.usd_per_hour > free.usd_per_hour
    assert any("provider shares" in r for r in capped.reasons)


def test_allowed_providers_are_respected() -> None:
    demand = Demand(vcpu=8, headroom=0.0, latency_ms=LATENCY)
    p = place(demand, OPTIONS, Limits(max_latency_ms=100, allowed_providers=frozenset({"azure"})))
    assert {a.provider for a in p.allocations} == {"azure"}
    assert any("providers not allowed: aws, gcp" in r for r in p.reasons)


def test_infeasible_cases_say_why_instead_of_raising() -> None:
    demand = Demand(vcpu=8, latency_ms=LATENCY)
    too_strict = place(demand, OPTIONS, Limits(max_latency_ms=5))
    assert not too_strict.feasible and too_strict.allocations == () and too_strict.weights == {}
    assert "infeasible: no priced instance type is within the latency limit" in too_strict.explain()
    one_provider = place(
        demand,
        OPTIONS,
        Limits(max_latency_ms=100, allowed_providers=frozenset({"aws"}), max_provider_share=0.5),
    )
    assert not one_provider.feasible
    assert "needs at least 2 providers, only 1 usable (aws)" in one_provider.explain()
    unknown = place(Demand(vcpu=8, latency_ms={}), OPTIONS, Limits(max_latency_ms=100))
    assert not unknown.feasible and "no latency known" in unknown.explain()


def test_memory_demand_is_met_too() -> None:
    options = [
        _price("aws", "us-east-1", "c.big", 8, 0.30, mem=8),
        _price("aws", "us-east-1", "r.big", 8, 0.50, mem=64),
    ]
    p = place(Demand(vcpu=8, headroom=0.0, memory_gib=60, latency_ms=LATENCY), options, Limits(100))
    assert [(a.instance_type, a.count) for a in p.allocations] == [("r.big", 1)]


def test_weights_sum_to_one_on_the_bundled_table() -> None:
    latency = {
        "aws/us-east-1": 20,
        "gcp/us-east1": 25,
        "azure/eastus": 22,
        "aws/eu-west-1": 80,
        "gcp/europe-west1": 85,
        "azure/westeurope": 82,
    }
    p = place(
        Demand(vcpu=101, latency_ms=latency), load_prices(), Limits(max_latency_ms=90, max_provider_share=0.4)
    )
    assert p.feasible and p.vcpu >= 101 * 1.2
    assert sum(p.weights.values()) == pytest.approx(1.0, abs=1e-12)
    assert sum(p.provider_weights.values()) == pytest.approx(1.0, abs=1e-12)
    assert len(p.provider_weights) == 3 and max(p.provider_weights.values()) <= 0.4 + 1e-9
    assert p.usd_per_hour == pytest.approx(sum(a.usd_per_hour for a in p.allocations))


def test_malformed_inputs_raise() -> None:
    with pytest.raises(ValueError, match="vcpu"):
        Demand(vcpu=0, latency_ms={})
    with pytest.raises(ValueError, match="max_provider_share"):
        Limits(max_latency_ms=100, max_provider_share=0)


# -- the price table --

HEADER = "provider,region,instance_type,vcpu,memory_gib,usd_per_hour,source,as_of,note\n"


def test_bundled_prices_cover_three_providers_with_sources_and_dates() -> None:
    prices = load_prices()
    assert {p.provider for p in prices} == {"aws", "gcp", "azure"}
    for provider in ("aws", "gcp", "azure"):
        assert len({p.region for p in prices if p.provider == provider}) >= 3
    assert all(p.source.startswith("https://") and p.as_of.year >= 2023 for p in prices)
    m5 = next(p for p in prices if p.location == "aws/us-east-1" and p.instance_type == "m5.large")
    assert (m5.vcpu, m5.memory_gib, m5.usd_per_hour) == (2, 8.0, 0.096)


def test_loader_reads_a_user_file_and_skips_comments(tmp_path: Path) -> None:
    f = tmp_path / "mine.csv"
    f.write_text("# negotiated\n" + HEADER + f"aws,us-east-1,m5.large,2,8,0.08,{SRC},2025-01-02,\n")
    (price,) = load_prices(f)
    assert price.usd_per_hour == 0.08 and price.as_of == date(2025, 1, 2)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (f"aws,us-east-1,m5.large,two,8,0.1,{SRC},2024-06-01,", r"row 2 \(line 4\), column vcpu: 'two'"),
        (f"aws,us-east-1,m5.large,2,8,-1,{SRC},2024-06-01,", "row 2 .*column usd_per_hour: '-1'"),
        (f"aws,us-east-1,m5.large,2,8,0.1,{SRC},June,", "row 2 .*column as_of: 'June' is not a date"),
        ("aws,us-east-1,m5.large,2,8,0.1,http://x,2024-06-01,", "row 2 .*column source"),
        (f"aws,,m5.large,2,8,0.1,{SRC},2024-06-01,", "row 2 .*column region: empty"),
        (f"aws,us-east-1,m5.xlarge,4,16,0.2,{SRC},2024-06-01,", "row 2 .*repeats row 1"),
    ],
)
def test_loader_names_the_row_and_column_of_a_mistake(row: str, message: str) -> None:
    first = f"aws,us-east-1,m5.xlarge,4,16,0.2,{SRC},2024-06-01,\n"
    with pytest.raises(ValueError, match=message):
        parse_prices("# c\n" + HEADER + first + row + "\n", "t.csv")


def test_loader_rejects_missing_columns_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing column"):
        parse_prices("provider,region\naws,x\n")
    with pytest.raises(ValueError, match="cannot read"):
        load_prices(tmp_path / "absent.csv")
