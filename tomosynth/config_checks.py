"""Checks of the workflow configuration at parse time, before any job runs.

The JSON schema checks each value on its own; this module adds what it cannot say: a short
one-line message for schema violations (instead of a dump of schema and config), pairs and
sums that contradict each other, names that must refer to other entries, the scans to run
(`run_scans`) and warnings for overlay entries that have no effect. The Snakefile calls
:func:`check_schema` before Snakemake's own validation and :func:`check_consistency` after it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tomosynth.errors import ConfigError

#: Tolerance of the split-fraction sum.
SPLIT_SUM_TOL = 1e-6


def _key(path: Iterable[Any]) -> str:
    """Dotted config key of a schema error path: ``preprocess.percentiles[1]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _schema_at(schema: Mapping, path: Iterable[Any]) -> Mapping:
    """The sub-schema describing the config value at `path` (properties/additionalProperties/items)."""
    node: Mapping = schema
    for part in path:
        if isinstance(part, int):
            node = node.get("items", {}) if isinstance(node.get("items"), Mapping) else {}
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        elif isinstance(node.get("additionalProperties"), Mapping):
            node = node["additionalProperties"]
        else:
            return {}
    return node


def schema_error_message(error: Any, schema: Mapping) -> str:
    """One line for a jsonschema ``ValidationError``: the key, the problem, the valid keys."""
    path = list(error.absolute_path)
    key = _key(path)
    where = "".join(f"[{p!r}]" for p in path)
    if error.validator == "additionalProperties":
        node = _schema_at(schema, path)
        unknown = sorted(set(error.instance) - set(node.get("properties", {})))
        valid = ", ".join(sorted(node.get("properties", {})))
        bad = ", ".join(repr(k) for k in unknown)
        at = f" under {key}" if path else ""
        return f"unknown config key{'s' if len(unknown) > 1 else ''} {bad}{at}; valid keys: {valid}"
    if error.validator in ("oneOf", "anyOf") and path and path[0] == "scans":
        return f"config {key}: a scan needs exactly one of builtin or path"
    message = _short(error.message)
    desc = _schema_at(schema, path).get("description")
    hint = f" ({_short(desc, 100)})" if desc else ""
    return f"config {key}: {message}{hint} [at {where or 'top level'}]"


def check_schema(config: Mapping, schema_path: str | os.PathLike) -> None:
    """Validate `config` against the YAML schema; raise a one-line ConfigError on failure.

    Snakemake's own ``validate`` prints the whole schema and config with the error; this
    runs first so that a user sees only the key, the problem and, for an unknown key, the
    valid keys at that level. It does not fill defaults (Snakemake's ``validate`` does).
    """
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    _check_moved_keys(config, schema)
    cls = jsonschema.validators.validator_for(schema)
    error = jsonschema.exceptions.best_match(cls(schema).iter_errors(dict(config)))
    if error is not None:
        raise ConfigError("Error validating config file: " + schema_error_message(error, schema))


def _check_moved_keys(config: Mapping, schema: Mapping) -> None:
    """Old flat WGAN-GP training keys (``wgan_gp.lr``) name their new home ``wgan_gp.train``."""
    block = config.get("wgan_gp")
    if not isinstance(block, Mapping):
        return
    node = _schema_at(schema, ["wgan_gp"])
    moved = set(_schema_at(node, ["train"]).get("properties", {})) - set(node.get("properties", {}))
    old = sorted(k for k in block if k in moved)
    if old:
        keys = ", ".join(f"wgan_gp.{k}" for k in old)
        raise ConfigError(
            f"Error validating config file: {keys}: the WGAN-GP training keys moved under "
            f"wgan_gp.train; move them there (wgan_gp: {{train: {{{old[0]}: ...}}}})"
        )


def yaml_problem(path: str | os.PathLike) -> str | None:
    """``file:line:column: message`` for a config file that does not parse, None if it does.

    Snakemake's own message for a broken config file ("Config file is not valid JSON or
    YAML") names neither the file nor the line.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"{path}: no such config file"
    except OSError as exc:
        return f"{path}: cannot read the config file ({exc.strerror or exc})"
    try:
        top = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark, ctx = exc.problem_mark, exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = exc.problem or "YAML syntax error"
        if exc.context and ctx is not None and (mark is None or ctx.line != mark.line):
            what += f" ({exc.context} started at line {ctx.line + 1})"
        return f"{where}: {what}"
    except yaml.YAMLError as exc:
        return f"{path}: {_short(exc)}"
    if not isinstance(top, dict):  # Snakemake: "must be given ... with keys at top level"
        what = "empty" if top is None else f"a {type(top).__name__}, not `key: value` lines"
        return f"{path}: the config file is {what}; a config holds `key: value` lines"
    return None


def configfile_args(argv: Sequence[str]) -> list[str]:
    """The files given to Snakemake's ``--configfile``/``--configfiles`` in `argv`, in order.

    Snakemake takes every following argument up to the next option (``nargs="+"``), and
    reads these files before the Snakefile runs, so the Snakefile cannot name a broken or
    missing one; ``tomosynth run`` checks them first (:func:`yaml_problem`).
    """
    out: list[str] = []
    taking = False
    for arg in argv:
        name, eq, value = arg.partition("=")
        if name in ("--configfile", "--configfiles"):
            taking = not eq
            out += [value] if eq else []
        elif taking and not arg.startswith("-"):
            out.append(arg)
        else:
            taking = False
    return out


def check_yaml_files(paths: Iterable[str | os.PathLike]) -> None:
    """ConfigError ``file:line:column: message`` for the first config file that does not parse."""
    for path in paths:
        problem = yaml_problem(path)
        if problem is not None:
            raise ConfigError(f"config file {problem}")


def _require_known(names: Iterable[str], known: Iterable[str], key: str, what: str) -> None:
    missing = [n for n in names if n not in set(known)]
    if missing:
        raise ConfigError(f"config {key}: {missing} are not {what} ({sorted(known)})")


def check_consistency(config: Mapping) -> None:
    """Cross-checks the schema cannot express; raise a one-line ConfigError naming the key.

    Run on the merged config with its defaults filled in. Checks: ordered pairs (percentiles,
    a scan's slice range), split fractions summing to 1, `run_scans` and every stage's scan
    lists naming configured scans, presets that exist, the SRGAN HR size among the PNG
    sizes and divisible by its scales, cross-validation folds <= specimens, and SRGAN
    warm-up epochs <= epochs.
    """
    scans = dict(config.get("scans", {}))
    pre = config.get("preprocess", {})
    _check_preprocess(pre)
    _check_scan_entries(scans)
    run = config.get("run_scans")
    if run is not None:
        _require_known(run, scans, "run_scans", "configured scans")
    _check_selected_scans(config, scans, int(pre.get("skip_slices", 0)))
    for key, names in (
        ("wgan_gp.scans", config.get("wgan_gp", {}).get("scans", [])),
        ("srgan.scans", config.get("srgan", {}).get("scans", [])),
        ("srgan.cv.specimens", config.get("srgan", {}).get("cv", {}).get("specimens", [])),
        ("srgan.lr_scans", list(config.get("srgan", {}).get("lr_scans", {}).values())),
    ):
        _require_known(names, scans, key, "configured scans")
    if config.get("srgan", {}):
        _check_srgan(config, list(pre.get("sizes", [])))
    check_preset_blocks(config)
    check_splits(config)


def _check_preprocess(pre: Mapping) -> None:
    """Percentiles in order; split fractions summing to 1."""
    low, high = pre.get("percentiles", [1, 99])
    if not low < high:
        raise ConfigError(
            f"config preprocess.percentiles: [{low}, {high}] must be [low, high] with low < high "
            "(they are the percentiles of the per-slice minima and maxima)"
        )
    split = pre.get("split", {})
    total = sum(float(v) for v in split.values())
    if abs(total - 1.0) > SPLIT_SUM_TOL:
        raise ConfigError(
            f"config preprocess.split: train + val + test = {total:g}, must be 1 "
            f"(got {dict(split)}; an unset fraction takes its default 0.8 / 0.1 / 0.1)"
        )


def _check_scan_entries(scans: Mapping) -> None:
    """Each scan: slice range in order; keys only for the kind of scan (path or built-in)."""
    for name, entry in scans.items():
        sl = entry.get("slices")
        if sl is not None and not sl[0] < sl[1]:
            raise ConfigError(
                f"config scans.{name}.slices: [{sl[0]}, {sl[1]}] must be [start, stop) with "
                "start < stop"
            )
        if "builtin" in entry and entry.get("theta_units") is not None:
            raise ConfigError(
                f"config scans.{name}.theta_units: only for scans read from a path (built-in "
                "scans store their units)"
            )
        if "path" in entry and entry.get("binning", 1) != 1:
            raise ConfigError(f"config scans.{name}.binning: only for built-in scans")


def _check_selected_scans(config: Mapping, scans: Mapping, skip: int) -> None:
    """Each scan this run uses: its file exists; `skip_slices` leaves some of its rows."""
    for name in select_scans(config):
        entry = scans[name]
        if "path" in entry:
            _check_scan_path(name, Path(entry["path"]))
        rows = _known_rows(config, entry)
        if rows is not None and rows - skip < 1:
            raise ConfigError(
                f"config preprocess.skip_slices: {skip} drops all {rows} slices of scan {name!r}"
            )


def _check_scan_path(name: str, scan_path: Path) -> None:
    if scan_path.is_dir():
        raise ConfigError(
            f"config scans.{name}.path: {scan_path} is a directory, not a DXchange .h5 file"
        )
    if not scan_path.exists():
        raise ConfigError(f"config scans.{name}.path: {scan_path} does not exist")


def _known_rows(config: Mapping, entry: Mapping) -> int | None:
    """Detector rows a scan gives before the file is read (None: known only from the file)."""
    if "builtin" in entry:
        rows = int(config.get("simulate", {}).get("slices", 0))
        if entry.get("slices") is not None:
            rows = min(rows, entry["slices"][1]) - entry["slices"][0]
        return rows
    if entry.get("slices") is not None:
        return entry["slices"][1] - entry["slices"][0]
    return None


def _check_srgan(config: Mapping, sizes: list) -> None:
    """Presets that exist, HR size and scales, folds, warm-up epochs <= epochs."""
    srgan = config.get("srgan", {})
    presets = srgan.get("presets", {})
    _require_known(srgan.get("run_presets", []), presets, "srgan.run_presets", "presets")
    upscale = config.get("upscale", {})
    if "srgan" in upscale.get("methods", []):
        _require_known([upscale.get("srgan_preset")], presets, "upscale.srgan_preset", "presets")
    uses_srgan = bool(srgan.get("scans")) and bool(srgan.get("run_scales"))
    hr = srgan.get("hr_size")
    if uses_srgan and hr not in sizes:
        raise ConfigError(f"config srgan.hr_size: {hr} is not one of preprocess.sizes {sizes}")
    for scale in srgan.get("run_scales", []) if uses_srgan else []:
        if hr % scale:
            raise ConfigError(
                f"config srgan.run_scales: {hr} px (srgan.hr_size) is not divisible by {scale}"
            )
    cv = srgan.get("cv", {})
    n_spec = len(cv.get("specimens", []))
    if n_spec and not 2 <= cv.get("folds", 2) <= n_spec:
        raise ConfigError(
            f"config srgan.cv.folds: {cv.get('folds')} folds for {n_spec} specimens "
            "(need 2 <= folds <= specimens)"
        )
    base = srgan.get("train", {})
    for name, preset in {"": {}, **presets}.items():
        train = {**base, **(preset.get("train", {}) or {})}
        if "epochs" in train and train.get("pretrain_epochs", 0) > train["epochs"]:
            key = f"srgan.presets.{name}.train" if name else "srgan.train"
            raise ConfigError(
                f"config {key}.pretrain_epochs: {train['pretrain_epochs']} is more than "
                f"epochs {train['epochs']}"
            )


def check_preset_blocks(config: Mapping) -> None:
    """Unknown keys inside a preset's ``train``/``generator``/``discriminator`` block: one line.

    The schema leaves these blocks open (their keys are those of ``srgan.train`` etc., which
    the schema cannot reference), so a typo would otherwise surface only when a job's input
    function runs, as a long InputFunctionException. Run after Snakemake's validation.
    """
    srgan = config.get("srgan", {})
    for name, preset in sorted(srgan.get("presets", {}).items()):
        for block in ("train", "generator", "discriminator"):
            given = (preset or {}).get(block) or {}
            valid = srgan.get(block, {})
            unknown = sorted(set(given) - set(valid)) if valid else []
            if unknown:
                raise ConfigError(
                    f"config srgan.presets.{name}.{block}: unknown key"
                    f"{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                    f"valid keys (those of srgan.{block}): {', '.join(sorted(valid))}"
                )


def needed_splits(config: Mapping) -> dict[str, str]:
    """Split sets (train/val/test) the configured stages read -> the first stage needing it."""
    needed: dict[str, str] = {}
    run = set(select_scans(config))
    wgan = [s for s in config.get("wgan_gp", {}).get("scans", []) if s in run]
    srgan_scans = [s for s in config.get("srgan", {}).get("scans", []) if s in run]
    if wgan:
        needed.setdefault("train", "train_wgan_gp")
        needed.setdefault("test", "compute_distance (its test reference)")
    srgan = config.get("srgan", {})
    if srgan_scans and srgan.get("run_presets") and srgan.get("run_scales"):
        needed.setdefault("train", "train_srgan")
        needed.setdefault("val", "train_srgan (validation PSNR)")
        held_out = set(srgan.get("cv", {}).get("specimens", []))
        if not set(srgan_scans) <= held_out:
            needed.setdefault("test", "compute_sr_metrics (the test split)")
    if "srcnn" in config.get("upscale", {}).get("methods", []) and wgan:
        needed.setdefault("train", "train_srcnn")
        needed.setdefault("val", "train_srcnn (validation)")
    return needed


def check_splits(config: Mapping) -> None:
    """Each split set a stage needs has a fraction above 0 (else a job fails minutes later
    with "no slices selected")."""
    split = config.get("preprocess", {}).get("split", {})
    empty = {
        part: stage
        for part, stage in needed_splits(config).items()
        if float(split.get(part, 0.0)) <= 0
    }
    if empty:
        parts = ", ".join(empty)
        readers = "; ".join(f"{stage} reads {part}" for part, stage in empty.items())
        raise ConfigError(
            f"config preprocess.split: {parts} {'is' if len(empty) == 1 else 'are'} 0, which "
            f"leaves {'that set' if len(empty) == 1 else 'those sets'} empty, but {readers}; "
            f"give {'it' if len(empty) == 1 else 'each'} a fraction > 0 (got {dict(split)})"
        )


#: The config key that lowers a rule's memory request (named in the warning).
MEMORY_KEYS = {
    "reconstruct": "recon.chunk_rows (or recon.memory_budget_mb)",
    "clip_bounds": "sizing.threads.clip_bounds",
    "export_png": "sizing.threads.export_png",
    "compute_distance": "evaluate.batch_size",
    "train_srgan": "srgan.train.batch_size (or srgan.hr_size)",
    "train_srcnn": "srcnn.batch_size",
    "compute_bone_metrics": "evaluate.bone (the ROI size)",
}


def machine_memory_mb() -> int | None:
    """Physical memory of this machine in MB (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e6)
    except (ValueError, OSError, AttributeError):
        return None


def memory_warnings(
    requests: Iterable[tuple[str, str, int]], limit_mb: int | None, where: str
) -> list[str]:
    """One warning per job whose memory request exceeds `limit_mb`, naming the key to lower.

    Parameters
    ----------
    requests : iterable of (rule, wildcards text, mem_mb)
        The jobs' memory requests.
    limit_mb : int or None
        This machine's memory (local runs) or ``sizing.max_mem_mb`` (cluster); None: no check.
    where : str
        What the limit is, for the message ("this machine's memory", "sizing.max_mem_mb").
    """
    if not limit_mb:
        return []
    out = []
    for rule, wc, mem in requests:
        if mem > limit_mb:
            key = MEMORY_KEYS.get(rule, f"the inputs of {rule}")
            out.append(
                f"warning: rule {rule} ({wc}) asks for {mem / 1000:.0f} GB of memory, more "
                f"than {where} ({limit_mb / 1000:.0f} GB): lower {key}"
            )
    return out


def scan_job_memory(rules: Iterable[Any], scans: Iterable[str]) -> list[tuple[str, str, int]]:
    """(rule, wildcards, mem_mb) of every job of a rule whose only wildcard is ``scan``.

    Evaluates each rule's ``mem_mb`` resource function at parse time (they read only the
    config and the scan headers); a function that cannot be evaluated yet is skipped.
    """
    from snakemake.iocontainers import Wildcards

    out = []
    for rule in rules:
        res = rule.resources.get("mem_mb") if hasattr(rule, "resources") else None
        if res is None or set(rule.wildcard_names) != {"scan"}:
            continue
        for scan in scans:
            try:
                value = res.evaluate(Wildcards(fromdict={"scan": scan}), input=[], threads=1)
                mem = int(value.value)
            except Exception:  # an input function needing files that do not exist yet
                continue
            out.append((rule.name, f"scan={scan}", mem))
    return out


def select_scans(config: Mapping) -> list[str]:
    """Scans the workflow runs: `run_scans` when set, else every configured scan (sorted)."""
    run = config.get("run_scans")
    return sorted(config["scans"] if run is None else run)


def restrict_to_run_scans(config: dict) -> None:
    """With `run_scans` set, drop the other scans from the stages' scan lists (in place).

    A user overlay that names only its own scans then needs no edits of `wgan_gp.scans`
    (default `[shale]`) or `srgan.scans` (default `[bone]`): stages whose scans are all
    outside `run_scans` produce nothing.
    """
    run = config.get("run_scans")
    if run is None:
        return
    keep = set(run)
    for block in ("wgan_gp", "srgan"):
        if block in config and "scans" in config[block]:
            config[block]["scans"] = [s for s in config[block]["scans"] if s in keep]
    cv = config.get("srgan", {}).get("cv")
    if cv and cv.get("specimens"):
        cv["specimens"] = [s for s in cv["specimens"] if s in keep]
    # The configured scans outside run_scans stay in `scans` (other keys may name them) but
    # are not run.


def overlay_warnings(
    overlays: Iterable[str | os.PathLike], merged: Mapping, base: str | os.PathLike | None = None
) -> list[str]:
    """Warnings for overlay entries that do nothing: an empty mapping (``scans: {}``), and
    :func:`demo_scale_warnings` for real scans that would train the demo's small models.

    ``--configfile`` overlays are merged into ``config.yaml`` key by key, so an empty mapping
    removes nothing. Returns one line per such entry, saying what to do instead.
    """
    import yaml

    out = []

    def walk(node: Any, merged_node: Any, prefix: str, path: str) -> None:
        if not isinstance(node, Mapping):
            return
        for key, value in node.items():
            key_path = f"{prefix}.{key}" if prefix else str(key)
            sub = merged_node.get(key) if isinstance(merged_node, Mapping) else None
            if isinstance(value, Mapping) and not value and sub:
                instead = (
                    "set run_scans: [your scans] to run only those"
                    if key_path == "scans"
                    else "set the keys to change inside it"
                )
                out.append(
                    f"warning: {path}: '{key_path}: {{}}' has no effect (--configfile merges "
                    f"into config.yaml, it does not replace it); {instead}"
                )
            else:
                walk(value, sub, key_path, path)

    for path in overlays:
        p = Path(path)
        if base is not None and p.resolve() == Path(base).resolve():
            continue
        try:
            data = yaml.safe_load(p.read_text())
        except (OSError, yaml.YAMLError):
            continue  # Snakemake reports unreadable config files itself
        walk(data, merged, "", str(path))
    return out + demo_scale_warnings(merged)


def demo_scale_warnings(config: Mapping) -> list[str]:
    """A warning when a real scan (one with a ``path``) would train config.yaml's demo-sized
    models: generators of a few minutes or capped channels, an SRGAN of a few channels.

    config.yaml is the demo; the schema's defaults and ``config/thesis.yaml`` are full scale.
    """
    scans = config.get("scans", {})

    def real(block: str) -> list[str]:
        names = config.get(block, {}).get("scans", [])
        return [s for s in names if isinstance(scans.get(s), Mapping) and "path" in scans[s]]

    found = []
    train = config.get("wgan_gp", {}).get("train", {})
    if real("wgan_gp") and (
        train.get("budget_minutes", 240) < 60 or train.get("max_channels") is not None
    ):
        found.append(
            f"wgan_gp.train budget_minutes {train.get('budget_minutes')}, max_channels "
            f"{train.get('max_channels')} for {real('wgan_gp')}"
        )
    gen = config.get("srgan", {}).get("generator", {})
    if real("srgan") and gen.get("channels", 64) < 64:
        found.append(f"srgan.generator channels {gen.get('channels')} for {real('srgan')}")
    return [
        f"warning: real scans train demo-sized models ({what}; config.yaml is the demo): "
        "add --configfile config/thesis.yaml (see config/README.md) or set these in your overlay"
        for what in found
    ]


__all__ = [
    "check_consistency",
    "check_preset_blocks",
    "check_yaml_files",
    "configfile_args",
    "yaml_problem",
    "check_splits",
    "machine_memory_mb",
    "memory_warnings",
    "scan_job_memory",
    "needed_splits",
    "check_schema",
    "demo_scale_warnings",
    "overlay_warnings",
    "restrict_to_run_scans",
    "schema_error_message",
    "select_scans",
]
