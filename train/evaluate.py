"""Evaluate a model on the crops of annotated faces: ``python -m train.evaluate MODEL --data ...``.

Protocol: boxes are the tight box of the ground-truth landmarks (300-W's bb_ground_truth), the same
crop rule as inference, no flip test. NME is inter-ocular (outer eye corners) unless --norm says.
"""
from __future__ import annotations

import argparse

from facelm.metrics import plot_ced, results_table
from facelm.schemes import get_scheme

from .crop_eval import errors_on_cache, evaluate_cache
from .label_judge import drop_broken_labels, load_judge
from .split_caches import DataSpec, load_split


def main(argv: list[str] | None = None) -> None:
    from facelm.hub import load_model
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("model", nargs="?", default=None, help="Hub id or local dir (default: the bundled model)")
    p.add_argument("--data", nargs="+", required=True, help="evaluation data (all of it, unless --split validation)")
    p.add_argument("--norm", default="interocular", choices=["interocular", "interpupil", "diagonal"],
                   help="what the NME is normalised by (default: interocular, the outer eye corners)")
    p.add_argument("--ced", default=None, help="write the CED plot here")
    p.add_argument("--split", choices=["all", "validation"], default="all",
                   help="validation: only the faces train.train's default split holds out")
    p.add_argument("--label-judge", default=None, metavar="MODEL",
                   help="with --max-label-nme, leave out the faces whose labels this model (any scheme) rejects")
    p.add_argument("--max-label-nme", type=float, default=None,
                   help="with --label-judge, the judge's NME above which a face's labels count as broken")
    a = p.parse_args(argv)
    if (a.label_judge is None) != (a.max_label_nme is None):
        p.error("--label-judge and --max-label-nme go together")
    model = load_model(a.model)
    scheme = get_scheme(model.scheme)
    spec = DataSpec(a.data, a.data, 1.0) if a.split == "all" else DataSpec(a.data)
    cache = load_split(spec, "validation", model.input_size, model.crop_scale, scheme)
    if a.label_judge:
        judge = load_judge(a.label_judge, model.crop_scale)
        cache, dropped = drop_broken_labels(cache, judge, a.max_label_nme, scheme)
        print(f"left out {sum(dropped.values())} faces whose labels {a.label_judge} puts above "
              f"{a.max_label_nme:.3f} NME: {dropped}")
    results = evaluate_cache(model, cache, scheme, a.norm)
    print(results_table(results))
    if a.ced:
        errors = errors_on_cache(model, cache, scheme, a.norm)
        print("CED plot:", plot_ced({"all": errors}, a.ced))


if __name__ == "__main__":
    main()
