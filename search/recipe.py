"""What a training recipe must hold, checked before anything trains: the settings every candidate,
the final training, the baseline or an ablation branch would otherwise fail on only once trained,
each rule from the code that applies it (:func:`check_recipe`, :func:`check_scoring`).

The search calls these from :func:`search.evolution.check_up_front` for the candidates' recipe and
the final one; ``search train-baseline`` and ``search ablate`` call them before their training.
A config's types and ranges are :func:`search.config.check_values`'s, when it is loaded.
"""

from __future__ import annotations

from typing import Any

from runtime.bundle import check_input_holds
from search.input_types import check_input_dtype


def check_recipe(cfg: dict[str, Any], where: dict[str, str] | None = None) -> None:
    """Refuse, before anything is trained, the settings every candidate would otherwise fail on only
    after its training: ``[export] threshold`` outside (0, 1), an unknown ``[candidate] profile`` or
    ``robust_profiles`` entry, an ``[export] input_dtype`` that cannot hold the synthetic scenes'
    counts, an integer ``input_dtype`` (normalised in the IR) with a ``[data] normalization_scale``
    only the host applies, a non-zero ``[export] sea_shift`` without a ``[train] land_gate``, an ``[export] tile``
    that a cell-averaging land gate's cell does not divide, and the training settings of
    :func:`_check_training_settings`.

    ``where`` names the tables in the messages (``{"export": "final.export"}`` for the final recipe).

    Raises:
        ValueError: naming the setting.
    """
    from runtime.profiles import get_profile

    name = {"export": "export", "train": "train", "candidate": "candidate", **(where or {})}
    exp, cand = cfg["export"], cfg["candidate"]
    threshold = exp["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
        raise ValueError(f"[{name['export']}] threshold must be a probability in (0, 1); got {threshold!r}")
    for key, profiles in (("profile", [cand["profile"]]), ("robust_profiles", list(cand["robust_profiles"]))):
        for profile in profiles:
            try:
                get_profile(profile)
            except ValueError as exc:
                raise ValueError(f"[{name['candidate']}] {key}: {exc}") from None
    check_input_dtype(exp["input_dtype"], f"[{name['export']}] input_dtype")
    if exp["input_dtype"] != "float32" and cfg["data"]["normalization_scale"] != "linear":
        # search.input_types.input_manifest refuses it too, but only once a network is trained
        raise ValueError(f"[{name['export']}] input_dtype {exp['input_dtype']!r} normalises in the IR, and [data] "
                         f"normalization_scale {cfg['data']['normalization_scale']!r} is applied on the host only; "
                         f"valid input_dtype with it: ['float32']")
    if cfg["data"].get("source") in (None, "", "synthetic"):  # a real set's counts are known once read
        check_input_holds(exp["input_dtype"], [cfg["data"]["scene_dtype"]], f"[{name['export']}] input_dtype",
                          "[data] scene_dtype")
    shift = exp.get("sea_shift", 0.0)
    if shift and cfg["train"]["land_gate"] == "none":
        raise ValueError(f"[{name['export']}] sea_shift = {shift} needs a land gate; [{name['train']}] land_gate "
                         f"is 'none'")
    from search.network import CELL_GATES, GATE_CELL

    if cfg["train"]["land_gate"] in CELL_GATES and int(exp["tile"]) % GATE_CELL:
        # The gate averages the exported tile over GATE_CELL px cells: any other tile fails at the
        # export, which each candidate reached only once trained (the patch is checked; the tile was not).
        raise ValueError(f"[{name['export']}] tile {exp['tile']} must be a multiple of {GATE_CELL} (the "
                         f"{cfg['train']['land_gate']!r} land gate's cell, [{name['train']}] land_gate); valid: "
                         f"e.g. {max(GATE_CELL, int(exp['tile']) // GATE_CELL * GATE_CELL)}")
    _check_training_settings(cfg, name)


def check_patch(stride: int, cfg: dict[str, Any], table: str = "train",
                stride_is: str | None = None) -> None:
    """``cfg``'s ``[train] patch`` a multiple of a network's total ``stride`` (and of the land gate's
    cell for a cell-averaging gate): another patch fails with a torch size mismatch in its first
    training batch, after the data was prepared. The one check of ``search train-baseline`` and
    ``search ablate`` (one fixed genome) and of :func:`search.evolution.check_up_front` (the largest
    stride of the space's genomes); ``table`` names the setting (``final.train``), ``stride_is``
    says what the stride is (default: the network's).

    Raises:
        ValueError: naming the setting and a valid patch.
    """
    import math

    from search.network import CELL_GATES, GATE_CELL

    patch, gate = int(cfg["train"]["patch"]), cfg["train"]["land_gate"]
    multiple = math.lcm(stride, GATE_CELL) if gate in CELL_GATES else stride
    if patch % multiple:
        why = f" and of the {gate!r} land gate's {GATE_CELL} px cell" if gate in CELL_GATES else ""
        what = stride_is or f"the network's total stride {stride}"
        raise ValueError(f"[{table}] patch {patch} must be a multiple of {multiple} ({what}{why}); "
                         f"valid: e.g. {max(multiple, patch // multiple * multiple)}")


def check_scoring(cand: dict[str, Any], here: bool = True) -> None:
    """``[candidate] check_target`` one of :data:`runtime.check.RULES`, and, when the scoring runs
    ``here`` (on this host), ``hil_device`` a device it has (:func:`runtime.device.resolve`): else
    the hil run would refuse it only once a network was trained and exported; ``robust_profiles``
    only with a twin (or ``flight``) as ``hil_device``, since hil refuses a profile elsewhere
    (:func:`runtime.device_names.check_profile_device`)."""
    from runtime.check import RULES
    from runtime.device import resolve
    from runtime.device_names import check_profile_device

    for profile in cand.get("robust_profiles") or []:
        try:
            check_profile_device(cand["hil_device"], profile)
        except ValueError as exc:
            raise ValueError(f"[candidate] robust_profiles with hil_device {cand['hil_device']!r}: {exc}") from None

    if here:
        try:
            resolve(cand["hil_device"])
        except ValueError as exc:
            raise ValueError(f"[candidate] hil_device: {exc}") from None
    if cand["check_target"] not in RULES:
        raise ValueError(f"[candidate] check_target {cand['check_target']!r}; valid: {sorted(RULES)}")


def _check_training_settings(cfg: dict[str, Any], name: dict[str, str]) -> None:
    """:func:`check_recipe`'s rules for any training (the search's and the baseline's), each from the
    code that applies it: the sampler's options (``[train] augment``, ``vessel_fraction``:
    :class:`search.data.SamplingOptions`), the land gate (:func:`search.network.check_land_settings`),
    ``[candidate] torch_device``, ``[data] modality`` (:data:`runtime.fit.MODALITIES`, what the
    manifest's ``trained_for`` must hold), ``normalization_scale``
    (:data:`runtime.bundle.NORMALIZATION_SCALES`) and the synthetic scenes' ``scene_mode`` and
    ``scene_dtype`` (:mod:`flightsim.synthetic`)."""
    from flightsim.synthetic.model import MODES, defaults
    from runtime.bundle import NORMALIZATION_SCALES
    from runtime.fit import MODALITIES
    from search.data import SamplingOptions
    from search.network import check_land_settings
    from search.train import torch_device

    try:
        SamplingOptions.from_config(cfg["train"], cfg["data"])
    except ValueError as exc:
        raise ValueError(f"[{name['train']}] {exc}") from None
    try:
        torch_device(cfg["candidate"]["torch_device"])
    except (RuntimeError, TypeError):
        raise ValueError(f"[{name['candidate']}] torch_device {cfg['candidate']['torch_device']!r}; valid: 'auto', "
                         f"'cpu', 'cuda', 'cuda:N' or another torch device name") from None
    except ValueError as exc:  # a CUDA device this host lacks
        raise ValueError(f"[{name['candidate']}] {exc}") from None
    check_land_settings(cfg["train"], cfg["data"]["land_masks"], name["train"])
    for key, valid in (("modality", MODALITIES), ("normalization_scale", NORMALIZATION_SCALES),
                       ("scene_mode", MODES), ("scene_dtype", tuple(defaults()["dtypes"]))):
        if cfg["data"][key] not in valid:
            raise ValueError(f"[data] {key} {cfg['data'][key]!r}; valid: {list(valid)}")
