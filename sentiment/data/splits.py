"""Stratified, seeded splits in which exact duplicate texts never straddle two splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sentiment.errors import SentimentError


def stratified_group_split(
    texts: Sequence[str],
    labels: Sequence[int],
    fractions: dict[str, float],
    seed: int,
    class_names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Row indices per split. `fractions` names the held-out splits; the rest goes to `train`.

    Rows with the same text form one group and move together; groups are stratified by the
    label of their first row, so each class is spread over the splits in the given shares.
    """
    group_of: dict[str, int] = {}
    group_rows: list[list[int]] = []
    group_label: list[int] = []
    for row, text in enumerate(texts):
        group = group_of.setdefault(text, len(group_rows))
        if group == len(group_rows):
            group_rows.append([])
            group_label.append(labels[row])
        group_rows[group].append(row)

    rng = np.random.default_rng(seed)
    assigned: dict[str, list[int]] = {name: [] for name in ["train", *fractions]}
    group_label_array = np.asarray(group_label)
    for cls in np.unique(group_label_array):
        groups = np.flatnonzero(group_label_array == cls)
        rng.shuffle(groups)
        counts = {name: int(round(share * len(groups))) for name, share in fractions.items()}
        needed = len(fractions) + 1
        if len(groups) < needed or min(counts.values()) == 0 or sum(counts.values()) >= len(groups):
            name = class_names[cls] if class_names is not None else str(cls)
            shares = "/".join(f"{share:.0%}" for share in fractions.values())
            raise SentimentError(
                f"class {name!r} has {len(groups)} distinct texts: too few to give every split "
                f"(train and {shares} held out) at least one; add data or change the split"
            )
        start = 0
        for name, count in counts.items():
            assigned[name].extend(groups[start : start + count])
            start += count
        assigned["train"].extend(groups[start:])

    return {
        name: np.sort(np.fromiter((row for g in groups for row in group_rows[g]), dtype=np.int64))
        for name, groups in assigned.items()
    }
