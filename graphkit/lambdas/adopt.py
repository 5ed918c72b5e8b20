"""Adopt one-hot Lambdas: put graphkit's ``OneHot`` in their place in a saved model's config.

This happens before Keras reads the file, so in safe mode no code of the Lambda is run or
even unmarshalled: the config is rewritten and Keras builds a ``OneHot`` where the Lambda was.
A Lambda is adopted when the user names it (``--onehot-lambda NAME[=DEPTH]``) or when its
saved code is certainly ``one_hot(cast(x), depth)`` (see ``recognise``); with ``--unsafe``
only named ones are adopted here, the others load as Lambdas and are proven by running them
(the ``lambda_to_onehot`` rule).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from graphkit.errors import GraphkitError
from graphkit.lambdas.recognise import LambdaInfo, recognise


class AdoptionError(GraphkitError):
    """A Lambda cannot be adopted as asked (the loader names the file)."""


@dataclass
class Adoption:
    """What happened to the Lambdas of one model config."""

    infos: list[LambdaInfo] = field(default_factory=list)  # every Lambda found
    adopted: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    changed: bool = False  # the config was rewritten (adoptions, or Keras 2 Lambda keys)

    @property
    def refused_in_safe_mode(self) -> list[LambdaInfo]:
        return [i for i in self.infos if i.name not in self.adopted]

    def hint(self, unsafe: bool = False) -> str:
        """What to tell a user whose load Keras refused because of Lambdas."""
        parts = []
        for info in self.refused_in_safe_mode:
            if info.does_more and not unsafe:
                parts.append(
                    f"Lambda {info.name!r} is not a plain one-hot: its saved code does more "
                    f"than one_hot(cast(x), depth) ({info.why_not_certain}), so graphkit does "
                    "not adopt it without running it"
                )
                continue
            if unsafe:
                if "by name only" in info.function:
                    adopt = f", or --onehot-lambda {info.name}" if info.one_hot else ""
                    parts.append(
                        f"Lambda {info.name!r} calls {info.function.replace(', saved', ' (saved')}): "
                        f"pass --import MODULE_OR_FILE.py that defines it{adopt}"
                    )
                continue
            if info.one_hot:
                depth = "" if info.depth is not None else "=DEPTH"
                parts.append(
                    f"Lambda {info.name!r} is a {info.describe()}: pass --onehot-lambda "
                    f"{info.name}{depth} to adopt it as graphkit's OneHot without running it"
                )
            else:
                why = f": {info.why_not_certain}" if info.why_not_certain else ""
                parts.append(
                    f"Lambda {info.name!r} ({info.function}) is not a one-hot graphkit can "
                    f"adopt{why}"
                )
        return "; ".join(parts)


def _is_lambda(item) -> bool:
    return (
        isinstance(item, dict)
        and item.get("class_name") == "Lambda"
        and isinstance(item.get("config"), dict)
    )


def lambda_entries(config) -> Iterator[tuple]:
    """(parent, key, layer entry) of every Lambda layer in a model config, nested too: items
    of layer lists, and values of dicts (a wrapper's ``layer``)."""
    if isinstance(config, dict):
        for key, value in config.items():
            if _is_lambda(value):
                yield config, key, value
            else:
                yield from lambda_entries(value)
    elif isinstance(config, list):
        for i, item in enumerate(config):
            if _is_lambda(item):
                yield config, i, item
            else:
                yield from lambda_entries(item)


def file_lambdas(path) -> list[LambdaInfo]:
    """What graphkit can tell about every Lambda in a model file, from its config alone."""
    from graphkit.model_files import check_model_file, read_config

    path, fmt = check_model_file(path)
    config = read_config(path, fmt)
    return [recognise(entry["config"]) for _, _, entry in lambda_entries(config or {})]


def parse_requests(values) -> dict[str, int | None]:
    """``["lambda", "enc=300"]`` -> ``{"lambda": None, "enc": 300}``; bad values raise."""
    out: dict[str, int | None] = {}
    for value in values or ():
        name, sep, depth = str(value).partition("=")
        name = name.strip()
        if not name:
            raise GraphkitError(f"--onehot-lambda {value!r}: expected NAME or NAME=DEPTH")
        if sep:
            try:
                number = int(depth)
            except ValueError:
                number = 0
            if number <= 0:
                raise GraphkitError(f"--onehot-lambda {value!r}: DEPTH must be a positive integer")
            out[name] = number
        else:
            out[name] = None
    return out


def adopt(
    config: dict, requested: Mapping[str, int | None], *, unsafe: bool, legacy: bool
) -> Adoption:
    """Replace adopted Lambdas in ``config`` (in place) by graphkit's OneHot; say what was done."""
    result = Adoption()
    if isinstance(requested, Mapping):
        requested = dict(requested)
    else:
        requested = parse_requests(requested)
    entries = list(lambda_entries(config))
    found = {str(entry["config"].get("name", entry.get("name"))) for _, _, entry in entries}
    missing = sorted(set(requested) - found)
    if missing:
        have = ", ".join(sorted(found)) or "none"
        raise AdoptionError(
            f"--onehot-lambda: the model has no Lambda named {', '.join(map(repr, missing))} "
            f"(its Lambda layers: {have})"
        )
    for parent, index, entry in entries:
        layer_config = entry["config"]
        info = recognise(layer_config)
        result.infos.append(info)
        asked = info.name in requested
        if not asked and (unsafe or not info.certain):
            if legacy and unsafe:
                result.changed |= _keras3_lambda_config(layer_config)
            continue
        depth = requested.get(info.name) or info.depth
        if depth is None:
            raise AdoptionError(
                f"Lambda {info.name!r}: its depth is not in the file: pass "
                f"--onehot-lambda {info.name}=DEPTH"
            )
        if requested.get(info.name) and info.depth and requested[info.name] != info.depth:
            result.notes.append(
                f"Lambda {info.name!r}: depth {requested[info.name]} as you asked "
                f"(its saved {info.depth_from.replace('its ', '')} says {info.depth})"
            )
        limit = info.signed_limit
        if depth >= 2**31:
            raise AdoptionError(
                f"Lambda {info.name!r}: depth {depth} is past the int32 index range"
            )
        if limit is not None and depth > limit:
            raise AdoptionError(
                f"Lambda {info.name!r} casts indices to {'/'.join(info.casts)}: indices "
                f"{limit}..{depth - 1} become negative and give zero rows, not one-hot rows"
            )
        wrap = info.wrap
        parent[index] = _onehot_entry(entry, depth, wrap, legacy=legacy)
        result.changed = True
        result.adopted.append(info.name)
        info.depth = depth
        how = (
            "on your word (--onehot-lambda)"
            if asked
            else f"its saved code is certainly {info.formula()}"
        )
        what = f"Lambda {info.name!r} adopted as graphkit's OneHot({depth}"
        what += f", wrap={wrap})" if wrap else ")"
        result.notes.append(f"{what}: {how}; none of its code was run")
        if asked and info.does_more:
            result.notes.append(
                f"WARNING: Lambda {info.name!r}: its saved code does more than "
                f"one_hot(cast(x), depth) ({info.why_not_certain}); adopted as a plain one-hot "
                "on your word, so predictions may differ from the original: `graphkit verify "
                "--unsafe ORIGINAL CONVERTED` compares with what its code computes"
            )
        if asked and not info.readable:
            result.notes.append(
                f"Lambda {info.name!r}: its code is not in the file, so any narrowing cast of "
                "its indices is unknown; taken as one_hot(x, depth) without one"
            )
        if wrap and depth > wrap:
            result.notes.append(aliasing_note(info.name, depth, wrap, info.casts))
    return result


def aliasing_note(name: str, depth: int, wrap: int, casts=()) -> str:
    cast = f"{'/'.join(casts)} cast" if casts else "index map"
    last = min(depth - 1, 2 * wrap - 1)
    more = "..." if depth > 2 * wrap else ""
    return (
        f"Lambda {name!r}: its {cast} sends index i to row i % {wrap}: indices "
        f"{wrap}..{depth - 1} share the rows of 0..{last - wrap}{more}, and rows "
        f"{wrap}..{depth - 1} of the next layer are never used. Kept exactly (a bug of the "
        "original model, not of the conversion); --unwrap-indices gives them their own rows"
        + (
            ". With float inputs TensorFlow's cast saturates to row "
            f"{wrap - 1} instead in vectorised code (large batches): the original's output "
            "depended on the batch there, graphkit's always wraps"
            if casts
            else ""
        )
    )


# Keras 2 Lambda config keys that Keras 3 refuses (its legacy loader drops them at the top
# level only; a Lambda in a nested model keeps them and fails to load).
KERAS2_LAMBDA_KEYS = ("module", "function_type", "output_shape_type", "output_shape_module")


def _keras3_lambda_config(config: dict) -> bool:
    """Rewrite a Keras 2 Lambda config the way Keras 3 reads it (for ``--unsafe`` loads)."""
    changed = False
    for key in KERAS2_LAMBDA_KEYS:
        if key in config:
            config.pop(key)
            changed = True
    fn = config.get("function")
    if isinstance(fn, list) and len(fn) == 3:
        code, defaults, closure = fn
        config["function"] = {
            "class_name": "__lambda__",
            "config": {"code": code, "defaults": defaults, "closure": closure},
        }
        changed = True
    if "batch_input_shape" in config:
        config["input_shape"] = config.pop("batch_input_shape")
        changed = True
    return changed


def _without_null_mask(nodes):
    """A Lambda's saved calls without ``mask=None``: Keras passes it to every layer whose
    ``call`` takes a mask (Lambda's does; a Functional float input has no mask), and OneHot's
    ``call`` takes none. Keras 3 nodes are ``{"args", "kwargs"}``; Keras 2 nodes are lists of
    ``[layer, node, tensor, kwargs]``. A mask that is a tensor is kept (and refused by Keras)."""
    if not isinstance(nodes, list):
        return nodes
    out = []
    for node in nodes:
        if isinstance(node, dict) and isinstance(node.get("kwargs"), dict):
            if "mask" in node["kwargs"] and node["kwargs"]["mask"] is None:
                kwargs = {k: v for k, v in node["kwargs"].items() if k != "mask"}
                node = {**node, "kwargs": kwargs}
        elif isinstance(node, list):
            node = [
                [*item[:3], {k: v for k, v in item[3].items() if k != "mask" or v is not None}]
                if isinstance(item, list) and len(item) == 4 and isinstance(item[3], dict)
                else item
                for item in node
            ]
        out.append(node)
    return out


def _onehot_entry(entry: dict, depth: int, wrap: int | None, *, legacy: bool) -> dict:
    old = entry["config"]
    config = {
        "name": old.get("name", entry.get("name")),
        "trainable": old.get("trainable", True),
        "input_dim": int(depth),
        "mask_zero": False,
        "wrap": wrap,
    }
    if "dtype" in old:
        config["dtype"] = old["dtype"]
    for key in ("batch_input_shape", "batch_shape", "input_shape"):
        if key in old:
            config[key] = old[key]
    new = {k: v for k, v in entry.items() if k not in ("class_name", "config", "module")}
    if "inbound_nodes" in new:
        new["inbound_nodes"] = _without_null_mask(new["inbound_nodes"])
    if legacy:
        new["class_name"] = "graphkit>OneHot"
    else:
        new["module"] = "graphkit.layers.one_hot"
        new["class_name"] = "OneHot"
        new["registered_name"] = "graphkit>OneHot"
    new["config"] = config
    return new
