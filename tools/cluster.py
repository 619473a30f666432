"""Clusters of identical Macs running one model: the plan (split, link, engine) and how decode scales.

Numbers come from tools/data/clusters.yaml, which carries the public measurements they were read from. The
speed side is a thin layer over the single-machine estimate: estimate_speed is asked for one node as if the
model fitted, and the cluster factor is applied on top (so changes to the single-machine model carry over).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tools.data_files import load_yaml
from tools.registry import ToolError
from tools.schemas import ClusterSpec

SOURCE = (
    "tools/data/clusters.yaml (public Mac-cluster measurements: exo #1468, exo #2070, mlx-lm PR #698, ...)"
)


def data() -> dict[str, Any]:
    return load_yaml("clusters.yaml")


@dataclass
class ClusterPlan:
    count: int
    link: str
    split: str
    runtime: str
    notes: list[str] = field(default_factory=list)


def _link_for(spec: ClusterSpec, chip: str | None) -> tuple[str, list[str]]:
    """The link the cluster is taken as using (a Mac without Thunderbolt 5 gets Thunderbolt 4), with notes."""
    d = data()
    link_name = spec.link
    pre: list[str] = []
    tb5 = [str(c) for c in d["thunderbolt5_chips"]]
    unknown = [str(c) for c in d.get("thunderbolt5_unknown", [])]
    if chip in unknown and link_name == "thunderbolt5" and "link" in spec.model_fields_set:
        pre.append(
            f"Whether Macs with the {chip} have Thunderbolt 5 is not in our sources: the cluster is taken as "
            "linked over Thunderbolt 5 as asked; check the ports (RDMA tensor parallel needs Thunderbolt 5)."
        )
    elif chip in unknown and link_name == "thunderbolt5":
        link_name = "thunderbolt4"
        pre.append(
            f"Whether Macs with the {chip} have Thunderbolt 5 is not in our sources: the cluster is taken as "
            "linked over Thunderbolt 4, which carries only a pipeline split (pass link thunderbolt5 if yours "
            "has it)."
        )
    elif chip is not None and link_name == "thunderbolt5" and chip not in tb5:
        if "link" in spec.model_fields_set:
            raise ToolError(
                f"cluster.link: the {chip} has no Thunderbolt 5 port (Thunderbolt 5 Macs: {', '.join(tb5)}); "
                "use thunderbolt4 or 10gbe (pipeline split).",
                fields=["cluster.link", "chip"],
            )
        # The default link is one this Mac does not have: answer for the link it does have, and say so.
        link_name = "thunderbolt4"
        pre.append(
            f"The {chip} has no Thunderbolt 5 port (Thunderbolt 5 Macs: {', '.join(tb5)}): the cluster is "
            "taken as linked over Thunderbolt 4, which carries only a pipeline split."
        )
    return link_name, pre


def plan(spec: ClusterSpec, runtime: str, chip: str | None = None) -> ClusterPlan:
    d = data()
    link_name, pre = _link_for(spec, chip)
    link = d["links"][link_name]
    split = spec.split or str(link["default_split"])
    if spec.split is None and runtime == "llama.cpp":
        # llama.cpp RPC can only split by layers: with no split asked for, that is the answer, not an error.
        split = "pipeline"
    if split not in link["splits"]:
        raise ToolError(
            f"cluster.split: {split} parallelism is measured only over Thunderbolt 5 RDMA; over "
            f"{link['label']} use pipeline." + (f" {pre[0]}" if pre else ""),
            fields=["cluster.split", "cluster.link"],
        )
    notes = [*pre, str(link["note"])]
    rt = runtime
    if runtime == "ollama":
        rt = "mlx"
        notes.append(str(d["runtimes"]["ollama"]) + ".")
    elif runtime == "llama.cpp":
        if split == "tensor":
            raise ToolError(
                "cluster.split: llama.cpp RPC splits by layers (pipeline); tensor parallel across Macs is "
                "exo / MLX distributed (runtime mlx).",
                fields=["cluster.split", "runtime"],
            )
        notes.append(str(d["runtimes"]["llama.cpp"]) + ".")
    measured = int(d["max_measured_nodes"])
    if spec.count > measured:
        notes.append(
            f"No public measurement with more than {measured} Macs: decode and prefill for {spec.count} "
            f"nodes are extrapolated from the 2-{measured} node runs (per-hop latency and all-reduce cost "
            "grow with the node count; treat the figures as optimistic)."
        )
    notes.append(
        f"{spec.count} identical Macs, {split} split over {link['label']}: each node holds "
        f"1/{spec.count} of the weights and KV cache plus its own compute buffer (GLM-5 8-bit needed 386 "
        "GB/node on 2 nodes and 196 on 4, exo #1468)."
    )
    return ClusterPlan(spec.count, link_name, split, rt, notes)


def decode_factor(p: ClusterPlan, single_tps: float) -> tuple[float, float, float, str]:
    """(expected, low, high) decode tok/s for the cluster from one node's decode, and how it was derived."""
    d = data()["decode"]
    n = p.count
    if p.split == "tensor":
        a, lo, hi = (float(d["tensor"][k]) for k in ("alpha", "alpha_low", "alpha_high"))
        why = (
            f"tensor parallel: one node's decode x {n}^{a:g} (measured speed-ups 1.10-1.23x on 2 Macs, "
            "1.54x on 4: per-layer all-reduces eat most of the gain; decode does not scale like memory)"
        )
        return single_tps * n**a, single_tps * n**lo, single_tps * n**hi, why
    hop, hop_lo, hop_hi = (float(d["pipeline"][k]) / 1000 for k in ("hop_ms", "hop_ms_low", "hop_ms_high"))
    hops = n - 1
    t = 1 / single_tps

    def tps(h: float) -> float:
        return 1 / (t + hops * h)

    why = (
        f"pipeline: nodes work in turn, so a token takes one node's full-model time plus {hops} hop(s) of "
        f"~{hop * 1000:g} ms (exo #2070: 2 M5 Max over TB5 TCP/IP 68 tok/s vs ~80-89 on one)"
    )
    return tps(hop), tps(hop_hi), tps(hop_lo), why


def prefill_factor(p: ClusterPlan) -> float:
    return float(p.count ** float(data()["prefill"][p.split]["alpha"]))
