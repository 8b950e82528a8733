"""What a training run is asked to do: ``TrainConfig``, whose fields are ``python -m train.train``'s
options (``train.dataclass_cli`` turns each field and its docstring into an option and its help)."""
from __future__ import annotations

from dataclasses import dataclass, field

from facelm.data import DEFAULT_VAL_FRACTION

from .dataclass_cli import parse_dataclass

DEFAULT_DISTILL = 0.5


@dataclass
class TrainConfig:
    data: list[str]
    """training data: annotation files or folders, save_to_disk folders or Hub dataset ids (anything
    facelm.data.load_dataset reads)"""
    out: str = "runs/default"
    """output folder: checkpoint.pt, best/ (the best model, its eval.json, ced.png and model card),
    tb/ (TensorBoard logs), snapshots/"""
    val_data: list[str] = field(default_factory=list)
    """validation data; default: a split of --data by identity (--val-fraction, --split-seed)"""
    val_fraction: float = DEFAULT_VAL_FRACTION
    """share of the identities held out for validation when there is no --val-data"""
    scheme: str = "ibug68"
    """landmark scheme of a new model (ibug68, kaggle15, celeba5); the data must have as many points"""
    backbone: str = "facelm_res"
    """backbone of a new model, by name (facelm.models: facelm_res, simple_cnn, dwsep_resnet, resnet18)"""
    head: str = "pipnet"
    """head of a new model, by name: pipnet (heatmap + offsets + neighbours) or regression"""
    width: int | None = None
    """network width; default: the --init-from model's, else 32. A larger one than the --init-from
    model's grows it (facelm.models.growth: same outputs at the start, more capacity to train)."""
    depth: int | None = None
    """stride-1 blocks per backbone stage (facelm_res); default and growth as for width, else 1. A
    smaller one than the --init-from model's keeps each stage's first blocks (a faster network
    to fine-tune, best with --teacher)"""
    input_size: int | None = None
    """crop side in pixels; default: the --init-from model's, else 112. Another size than the
    --init-from model's re-grids its head and fine-tunes at the new size."""
    in_chans: int = 3
    """input channels of a new model: 3 (RGB) or 1 (grayscale)"""
    num_neighbors: int = 5
    """neighbours per point that a new PIPNet head also predicts each point from (0: none)"""
    crop_scale: float | None = None
    """crop side / face box side; default: the --init-from model's, else 1.3"""
    epochs: int = 60
    """most epochs to run (the cosine schedule spans them, or the time budget if shorter)"""
    batch_size: int = 64
    """training faces per step (per process under accelerate launch)"""
    lr: float = 2e-3
    """peak learning rate of AdamW, reached after the warm-up"""
    weight_decay: float = 1e-4
    """AdamW weight decay"""
    warmup_epochs: float = 1.0
    """epochs of linear learning-rate warm-up (may be a fraction)"""
    patience: int = 20
    """stop after this many epochs without a better validation NME"""
    num_workers: int = 1
    """DataLoader worker processes that augment training faces (0: in the training process)"""
    seed: int = 0
    """seed of the training randomness (initialisation, sampling, augmentation)"""
    split_seed: int = 0
    """seed of the validation split (facelm.data.split_dataset), apart from --seed: runs with other
    seeds validate on the same held-out faces instead of training on them"""
    source_weights: dict[str, float] = field(default_factory=dict,
                                             metadata={"flag": "source-weight", "metavar": "SOURCE=W"})
    """sample faces of a source W times as often (e.g. afw=2)"""
    init_from: str | None = None
    """start from this model's weights (a folder, bundled name or Hub id); its input size, crop scale,
    width and depth are the defaults of this run"""
    resume: bool = False
    """continue from OUT/checkpoint.pt (weights, optimiser, schedule and best NME)"""
    time_budget_min: float | None = None
    """stop after this many minutes of training; the cosine schedule fits itself to the budget"""
    max_faces: int | None = None
    """use at most this many faces of each --data entry (quick runs, tests)"""
    cache_dir: str | None = None
    """folder of the decoded face crops; default: facelm.paths.cache_dir("crops"), i.e.
    $FACELM_CACHE/crops, else $XDG_CACHE_HOME/facelm/crops or ~/.cache/facelm/crops"""
    push_to_hub: str | None = None
    """upload the best model to this Hub repo (ORG/NAME) at the end; a local path copies it there"""
    eval_every: int = 1
    """validate every N epochs (and after the last)"""
    threads: int = 0
    """torch CPU threads (0: torch's default). One thread is steadier on a busy 2-core machine."""
    max_label_nme: float | None = None
    """drop training faces on which the --init-from model's (or --label-judge's) NME exceeds this
    (e.g. 0.15): labels that far off are broken (ytf68 has scrambled and lagging tracker shapes), not hard faces"""
    label_judge: str | None = None
    """the model whose NME --max-label-nme reads (default: the --init-from model); any scheme (its
    points are converted) and input size, at this run's crop scale: e.g. ibug68 on 5-point data"""
    augment: float = 1.0
    """strength of the geometric augmentation (rotation, scale, box shift); 1 = facelm.augment's defaults"""
    flip: float = 0.5
    """probability of mirroring a training face (its points renumbered by the scheme's mirror permutation)"""
    occlusion: float = 0.0
    """probability of painting a random flat rectangle over a training face (facelm.augment.Occlude)"""
    ema: float = 0.0
    """decay of an exponential moving average of the weights (e.g. 0.998); above 0, validation, the
    best checkpoint and the final model use the averaged weights, which are steadier than the last step's"""
    mixed_precision: str = field(default="no", metadata={"choices": ("no", "bf16")})
    """"bf16" runs the training steps under bfloat16 autocast, faster on CPUs with AMX or AVX512-BF16
    and on recent GPUs (see docs/training.md); validation and the saved model stay float32.
    (Accelerate's own --mixed_precision also works, but it fixes the precision for the whole process.)"""
    snapshot_every: int = 0
    """above 0, also keep the (averaged, with --ema) weights of every N-th epoch in OUT/snapshots/, for
    python -m train.average (stochastic weight averaging over the end of a run)"""
    teacher: str | None = None
    """a model (folder, bundled name or Hub id) whose flip-test points on each training crop are
    blended into the labels (train.distill): knowledge distillation"""
    distill: float | None = None
    """with --teacher, how far the targets move from the labels towards the teacher's points (0-1;
    default 0.5)"""
    select_by: str = "all"
    """validation group whose mean NME picks the best checkpoint and drives early stopping: "all", a
    source (e.g. ytf68) or a group such as 300w"""


DESCRIPTION = """Train a landmark model.

    python -m train.train --data ../shared/data/300w ../shared/data/ytf68 --out runs/default
    accelerate launch -m train.train --data ...        # many GPUs / nodes, unchanged
    python -m train.train --data my_edits.xml --init-from ibug68 --epochs 20   # fine-tune
    python -m train.train --data ... --init-from ibug68 --teacher ibug68   # distil a teacher's flip test

Best checkpoint by validation NME, early stopping, --resume, TensorBoard logs in OUT/tb, a final
evaluation (NME, FR, AUC, CED PNG) and a model card in OUT/best. Recipes: docs/training.md."""


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    return parse_dataclass(TrainConfig, argv, prog="python -m train.train", description=DESCRIPTION)
