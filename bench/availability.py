"""Availability figures of an upgrade run from cinfo samples (the benchmark's and the cluster
test's measure; the engine itself does not need them)."""

UNAVAILABLE_RESOURCES = ("down",)


def unavailable_nodes(nodes, ignore=()):
    """Names of nodes that cannot take jobs: down or drained (``nodes`` as crane.nodes)."""
    return sorted(
        name
        for name, state in nodes.items()
        if name not in ignore
        and (state.get("resource") in UNAVAILABLE_RESOURCES or state.get("control") == "drain")
    )


def availability(samples, ignore=()):
    """Figures of a run from cinfo samples ``[(seconds, nodes or None), ...]`` in time order.

    ``nodes`` is ``{node: {"resource", "control"}}`` (crane.nodes) or None when cinfo did not
    answer. Returns ``total`` (first to last sample), ``max_unavailable`` (most nodes at once),
    ``longest_node`` ({"node", "seconds"}), ``per_node`` seconds and ``control_gaps`` (list of
    seconds cinfo did not answer). A node counts as unavailable from the sample it is first
    seen down or drained until the next sample it is seen available.
    """
    per_node, since, gaps = {}, {}, []
    max_unavailable, gap_start = 0, None
    for when, nodes in samples:
        if nodes is None:
            gap_start = when if gap_start is None else gap_start
            continue
        if gap_start is not None:
            gaps.append(when - gap_start)
            gap_start = None
        down = set(unavailable_nodes(nodes, ignore))
        max_unavailable = max(max_unavailable, len(down))
        for node in down:
            since.setdefault(node, when)
        for node in [n for n in since if n not in down]:
            per_node[node] = max(per_node.get(node, 0.0), when - since.pop(node))
    end = samples[-1][0] if samples else 0.0
    for node, start in since.items():
        per_node[node] = max(per_node.get(node, 0.0), end - start)
    if gap_start is not None:
        gaps.append(end - gap_start)
    longest = max(per_node.items(), key=lambda i: i[1], default=(None, 0.0))
    return {
        "total": end - samples[0][0] if samples else 0.0,
        "max_unavailable": max_unavailable,
        "longest_node": {"node": longest[0], "seconds": longest[1]},
        "per_node": per_node,
        "control_gaps": gaps,
    }
