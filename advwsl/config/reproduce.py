"""Settings of ``advwsl reproduce``: one frozen dataclass per kind of experiment — the appendix V attack
tables (:class:`AttackTableSettings`, Tables A V-1 to A V-4), the defense tables (:class:`DefenseTableSettings`,
Tables A V-5 / A V-6), the weakly supervised tables and figures of chapters 2 to 4
(:class:`WslTableSettings`) and the CAMELYON16 patch counts (:class:`PatchCountSettings`, Table 2.4) — and
what a run departs from in the reference (:class:`Departure`).

``advwsl reproduce ID --set path=value`` changes one setting: the path (keys and list indices joined by
dots, ``rows.2.n_samples``) is applied to the settings and the result is built again, so a misspelt key is
refused with the keys that exist there and a value of the wrong type with the type expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError
from .core import Config, option
from .training import check_overrides
from .vocabulary import DATA_ROOT, DEVICE, OUT, PROGRESS

__all__ = ["Departure", "AttackRow", "AttackTableSettings", "DefenseSettings", "DefenseTableSettings",
           "ConstantsSettings", "WslRow", "WslGroup", "FigureSettings", "WslTableSettings", "PatchCountSettings", "ReproduceConfig"]


@dataclass(frozen=True)
class Departure(Config):
    """One way a run departs from the reference's protocol: ``what`` (in the reference's terms), ``why``
    (empty for a stand-in's note on how it is built, listed as it is), its ``effect`` where it was measured (e.g. "median L2 +13.6 % with the abort, 200 digits"), and the
    ``settings`` (dotted paths) whose values it explains — a setting that differs from the reference's
    recorded protocol must be named by one departure."""

    what: str
    why: str
    effect: str = ""
    settings: tuple[str, ...] = ()


@dataclass(frozen=True)
class AttackRow(Config):
    """A row of an attack table: ``attack`` at ``budget`` (``--budget`` text), on the first ``n_samples``
    images when fewer than the table's, with extra ``kwargs`` (e.g. ``{"abort_early": true}``); ``label``
    names it in the budget column when two rows share an attack and a budget."""

    attack: str
    budget: str
    n_samples: int | None = option(None, "", low=1)
    kwargs: dict[str, Any] = option(default_factory=dict)
    label: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """How findings and figures name the row: (attack, label or budget)."""
        return self.attack, self.label or self.budget


#: The datasets the appendix V experiments run on (mnist-5k offline; MNIST and CIFAR-10 with --data-root).
AppendixVData = Literal["mnist-5k", "mnist", "cifar10"]


@dataclass(frozen=True)
class AttackTableSettings(Config):
    """Tables A V-1 to A V-4: the ``rows`` on the first ``n_samples`` test images of ``dataset`` (its model:
    the C&W network trained by ``recipe`` over the dataset's), in batches of ``batch_size``; the rows of
    Figure A V-9 (``figure_rows``: (attack, budget) pairs)."""

    dataset: AppendixVData
    n_samples: int = option(1000, "", low=1)
    rows: tuple[AttackRow, ...] = ()
    batch_size: int = option(1000, "", low=1)
    figure_rows: tuple[tuple[str, str], ...] = ()
    recipe: dict[str, Any] = option(default_factory=dict)

    def check(self) -> None:
        check_overrides(self.recipe, where="recipe")
        if not self.rows:
            raise ConfigError("an attack table needs at least one row")


@dataclass(frozen=True)
class DefenseSettings(Config):
    """How the defenses of Tables A V-5 / A V-6 are trained (section A V-6): on adversarials projected on
    the L2 ball of ``epsilon`` (epsilon_max), DDN with ``ddn_steps`` (eq. A V-9) or Madry's PGD-L2 with
    ``pgd_steps`` (eq. A V-7), ``epochs`` at learning rate ``lr`` times 0.1 after the ``milestone`` share of
    the run; ``from_scratch`` (the reference's MNIST recipe) or fine-tuned from the baseline (the reference's
    CIFAR-10 recipe: 200 clean epochs first); ``checkpoints`` names already trained defenses
    (``{"madry": path, "ddn": path}``) to evaluate instead of training them."""

    epsilon: float = option(2.4, "", low=0, low_open=True)
    epochs: int = option(50, "", low=1)
    lr: float = option(0.01, "", low=0, low_open=True)
    milestone: float = option(0.6, "", low=0, low_open=True, high=1, high_open=True)
    ddn_steps: int = option(100, "", low=1)
    pgd_steps: int = option(40, "", low=1)
    from_scratch: bool = True
    checkpoints: dict[str, str] = option(default_factory=dict)

    def check(self) -> None:
        unknown = sorted(set(self.checkpoints) - {"madry", "ddn"})
        if unknown:
            raise ConfigError(f"defense.checkpoints names {unknown}; the defenses are madry and ddn")


@dataclass(frozen=True)
class DefenseTableSettings(Config):
    """Tables A V-5 / A V-6 and Figure A V-4: a baseline, a Madry-trained and a DDN-trained model evaluated
    on the first ``n_samples`` test images with the attacks of ``budgets`` (attack -> budget; with the extra
    keyword arguments of ``attack_kwargs``, e.g. ``{"cw": {"abort_window_found": 100}}``), their per-sample
    best, and the accuracy at ``epsilon``."""

    dataset: AppendixVData
    n_samples: int = option(1000, "", low=1)
    epsilon: float = option(1.5, "", low=0, low_open=True)
    batch_size: int = option(1000, "", low=1)
    budgets: dict[str, str] = option(default_factory=dict)
    defense: DefenseSettings = option(default_factory=DefenseSettings)
    recipe: dict[str, Any] = option(default_factory=dict)
    extra_budgets: dict[str, str] = option(default_factory=dict)
    attack_kwargs: dict[str, dict[str, Any]] = option(default_factory=dict)

    def check(self) -> None:
        check_overrides(self.recipe, where="recipe")
        if not self.budgets:
            raise ConfigError("a defense table needs at least one attack in budgets")
        unknown = sorted(set(self.attack_kwargs) - set(self.budgets) - set(self.extra_budgets))
        if unknown:
            raise ConfigError(f"attack_kwargs names {unknown}, which the table does not run; its attacks: "
                              f"{sorted({*self.budgets, *self.extra_budgets})}")


@dataclass(frozen=True)
class ConstantsSettings(Config):
    """Figure A V-2: the constant ``c`` of the search that found each image's best C&W adversarial, at
    ``budget`` (9 x 10 000, with the extra C&W keyword arguments of ``attack_kwargs``, e.g.
    ``{"abort_window_found": 100}``), on the first ``n_samples`` test images, for each model of ``models``
    (the baseline and the defenses of Table A V-5, trained or named as ``defense`` says)."""

    dataset: AppendixVData
    n_samples: int = option(1000, "", low=1)
    budget: str = "9x10000"
    batch_size: int = option(1000, "", low=1)
    models: tuple[Literal["baseline", "madry", "ddn"], ...] = ("baseline", "madry", "ddn")
    defense: DefenseSettings = option(default_factory=DefenseSettings)
    recipe: dict[str, Any] = option(default_factory=dict)
    attack_kwargs: dict[str, Any] = option(default_factory=dict)

    def check(self) -> None:
        check_overrides(self.recipe, where="recipe")
        if "baseline" not in self.models or len(self.models) < 2:
            raise ConfigError("models must hold the baseline and at least one defense (madry, ddn): the figure "
                              "compares the constants with and without adversarial training")


@dataclass(frozen=True)
class WslRow(Config):
    """A method of a weakly supervised table: a zoo ``model`` (or the ``unet`` bound) trained with the
    recipe plus ``train`` options (``real`` / ``stand_in``: only on the real data / the stand-in), seen
    through a ``view`` (``gradcam``), with its own ``preset``; ``measures`` renames a measure for this row."""

    method: str
    model: str | None = None
    view: Literal["gradcam"] | None = None
    unet: bool = False
    preset: str | None = None
    train: dict[str, Any] = option(default_factory=dict)
    real: dict[str, Any] = option(default_factory=dict)
    stand_in: dict[str, Any] = option(default_factory=dict)
    measures: dict[str, str] = option(default_factory=dict)

    def check(self) -> None:
        for name in ("train", "real", "stand_in"):
            check_overrides(getattr(self, name), where=f"rows ({self.method}).{name}")


@dataclass(frozen=True)
class WslGroup(Config):
    """A setting of a weakly supervised table (a column group or a point of a sweep): its name, its ``x``
    and ``panel`` in the figure, training options (``train``, ``real``, ``stand_in``), a ``data_root``
    subfolder; ``stand_in_run=False`` leaves it out of the stand-in."""

    group: str = ""
    x: float | None = None
    panel: str | None = None
    train: dict[str, Any] = option(default_factory=dict)
    real: dict[str, Any] = option(default_factory=dict)
    stand_in: dict[str, Any] = option(default_factory=dict)
    stand_in_run: bool = True
    data_root: str | None = None

    def check(self) -> None:
        for name in ("train", "real", "stand_in"):
            check_overrides(getattr(self, name), where=f"groups ({self.group}).{name}")


@dataclass(frozen=True)
class FigureSettings(Config):
    """The figure of a sweep: its ``measures``, x label, log scale, and what draws one line (``lines``)."""

    measures: tuple[str, ...] | None = None
    xlabel: str = ""
    log_x: bool = False
    lines: str = "method"


@dataclass(frozen=True)
class WslTableSettings(Config):
    """The tables and figures of chapters 2 to 4 (see :mod:`advwsl.reproduce.wsl`): ``rows`` trained and
    evaluated under each of ``groups`` on ``folds``, reported as ``measures``; on the real data with the
    reference's ``preset`` (``unet_preset`` for the U-Net), on the synthetic stand-in with the ``synthetic``
    recipe plus ``stand_in`` options and ``stand_in_data`` (``stand_in_groups``, ``stand_in_folds``);
    ``evaluation`` (``cam_rule``, ``cam_class``), ``overrides`` / ``stand_in_overrides`` (applied last),
    ``notes`` / ``stand_in_notes`` and the ``figure`` of a sweep."""

    dataset_label: str
    preset: str
    rows: tuple[WslRow, ...]
    measures: tuple[str, ...]
    folds: tuple[int, ...] = (0, 1, 2, 3, 4)
    stand_in_folds: tuple[int, ...] | None = None
    unet_preset: str | None = None
    stand_in: dict[str, Any] = option(default_factory=dict)
    stand_in_data: dict[str, Any] = option(default_factory=dict)
    groups: tuple[WslGroup, ...] = (WslGroup(),)
    stand_in_groups: tuple[WslGroup, ...] | None = None
    evaluation: dict[str, str] = option(default_factory=dict)
    overrides: dict[str, Any] = option(default_factory=dict)
    stand_in_overrides: dict[str, Any] = option(default_factory=dict)
    notes: tuple[str, ...] = ()
    stand_in_notes: tuple[str, ...] = ()
    figure: FigureSettings | None = None

    def check(self) -> None:
        for name in ("stand_in", "overrides", "stand_in_overrides"):
            check_overrides(getattr(self, name), where=name)
        unknown = sorted(set(self.evaluation) - {"cam_rule", "cam_class"})
        if unknown:
            raise ConfigError(f"evaluation has no setting {unknown}; it takes cam_rule, cam_class")


@dataclass(frozen=True)
class PatchCountSettings(Config):
    """Table 2.4: the CAMELYON16 patch protocol's counts per patch size (``patch_sizes`` on the real slides;
    ``stand_in_patch_sizes`` on ``toy_slides`` (tumour, normal) toy slides of ``toy_size``)."""

    patch_sizes: tuple[int, ...] = (512, 768, 1024)
    stand_in_patch_sizes: tuple[int, ...] = (64, 96, 128)
    toy_slides: tuple[int, int] = (4, 5)
    toy_size: tuple[int, int] = (2048, 1536)
    workers: int = option(1, "", low=1)
    stand_in_folds: int = option(2, "", low=2)


@dataclass(frozen=True)
class ReproduceConfig(Config):
    """``advwsl reproduce``: which entry (``entry_id``; ``show_list`` lists them), its ``quick`` version,
    ``--set`` changes of its settings, and where it runs."""

    entry_id: str | None = option(None, "")
    show_list: bool = option(False, "List every table and figure, what it needs and whether it runs here.",
                             flag="--list", short_flag=True)
    quick: bool = option(False, "A minutes-long smoke version of the same pipeline (marked as such).",
                         short_flag=True)
    set_pairs: tuple[str, ...] = option((), "Change a setting of the run (a dotted path into the entry's settings: "
                                            "n_samples=500, defense.epochs=3, rows.2.n_samples=40); repeatable. The "
                                            "table says what was changed.", flag="--set", multiple=True,
                                        metavar="KEY=JSON")
    dataset: str | None = option(None, "Dataset of an appendix V entry: mnist-5k (default, offline), mnist or "
                                       "cifar10 (with --data-root).")
    workers: int = option(1, "Worker processes running independent rows (attack tables) or models (defense tables) "
                             "side by side, the cores divided among them; the rows are those one process would "
                             "compute at the same threads per process.", low=1)
    data_root: str | None = DATA_ROOT()
    device: str | None = DEVICE()
    out: str | None = OUT()
    resume: str | None = option(None, "Continue the interrupted run in this directory, with the settings it started "
                                      "with; the attacks' finished chunks are read back, not run again.", metavar="DIR")
    take_over: bool = option(False, "With --resume: continue a run started on another machine, whose process advwsl "
                                     "cannot check from here (a crashed job, a lost node); only once sure it has "
                                     "stopped.", short_flag=True)
    reuse: tuple[str, ...] = option((), "Read back the attack chunks of an earlier run directory (repeatable): the rows "
                                        "whose attack, settings, model and images are unchanged are not attacked "
                                        "again.", multiple=True, metavar="DIR")
    progress: bool = PROGRESS()

    def check(self) -> None:
        if self.take_over and self.resume is None:
            raise ConfigError("--take-over continues a run of another machine: give it with --resume DIR")
        if self.resume is None:
            return
        given = [flag for flag, value in (("--quick", self.quick), ("--set", self.set_pairs), ("--dataset", self.dataset),
                                          ("--data-root", self.data_root), ("--out", self.out),
                                          ("--reuse", self.reuse)) if value]
        if given:
            raise ConfigError(f"--resume continues a run with the settings it started with; drop {', '.join(given)} "
                              "(or start a new run with --out instead)")
