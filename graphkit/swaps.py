"""Swaps: a sublayer of a custom layer or subclassed model replaced in place, and kept so.

Graph surgery cannot reach into a subclassed layer: its ``call`` is Python. But the layers it
holds are attributes (or items of lists and dicts), so graphkit replaces them by drop-in
twins with the same call signature and variables (``OneHotEmbedding`` for ``Embedding``).

A custom layer rebuilds its sublayers in ``__init__`` when a file is loaded, which would undo
the swap. So the owner of a swapped attribute is saved under graphkit's registered name
``graphkit>Swapped``, with the user's own config inside and the list of swaps:
``{"layer": <the user's serialized layer>, "swaps": {"token_emb": "graphkit>OneHotEmbedding"}}``.

* Loaded with graphkit imported (and the user's code), ``Swapped.from_config`` rebuilds the
  user's layer, swaps the attributes again and builds them: the weights then load into the
  same structure that was saved.
* Loaded without graphkit, Keras cannot find ``graphkit>Swapped`` and refuses the file, naming
  it: never a silent change of what the model computes.

Swapping back (``--to embedding``) restores the user's own class once no swap is left, so the
file is the user's again.
"""

from __future__ import annotations

import re

REGISTERED = "graphkit>Swapped"
_MARKED: dict[type, type] = {}


def attribute_path(attribute: str, key) -> str:
    if key is None:
        return attribute
    return f"{attribute}[{key!r}]" if isinstance(key, str) else f"{attribute}[{key}]"


def parse_path(path: str):
    """``"towers[0]"`` -> ``("towers", 0)``; ``"embs['a']"`` -> ``("embs", "a")``."""
    m = re.fullmatch(r"([A-Za-z_]\w*)(?:\[(\d+|'[^']*'|\"[^\"]*\")\])?", path)
    if not m:
        raise ValueError(f"bad attribute path {path!r}")
    key = m.group(2)
    if key is None:
        return m.group(1), None
    return m.group(1), int(key) if key.isdigit() else key[1:-1]


def user_class(obj) -> type:
    return getattr(type(obj), "_graphkit_user_class", type(obj))


def swaps_of(obj) -> dict[str, str]:
    return dict(getattr(obj, "_graphkit_swaps", {}) or {})


def _marked_class(user: type) -> type:
    if user not in _MARKED:
        from graphkit import _keras_api

        def get_config(self):
            return {"layer": _keras_api.serialize_as(self, user), "swaps": swaps_of(self)}

        def get_build_config(self):
            return None  # the user's layer carries its own (it is built from it on load)

        cls = type(
            user.__name__,  # the same name: Keras names saved weights after it
            (user,),
            {
                "get_config": get_config,
                "get_build_config": get_build_config,
                "_graphkit_user_class": user,
                "__module__": "graphkit.swaps",
                "__doc__": user.__doc__,
            },
        )
        _keras_api.set_registered_name(cls, REGISTERED)
        _MARKED[user] = cls
    return _MARKED[user]


def record(owner, path: str, registered: str | None) -> None:
    """Note that ``owner``'s attribute ``path`` now holds a ``registered`` layer (None: the
    user's own again); ``owner`` then saves as ``graphkit>Swapped`` while any swap is left."""
    swaps = swaps_of(owner)
    if registered is None:
        swaps.pop(path, None)
    else:
        swaps[path] = registered
    object.__setattr__(owner, "_graphkit_swaps", swaps)
    user = user_class(owner)
    owner.__class__ = _marked_class(user) if swaps else user


def swap(container, path: str, owner, attribute: str, key, old, new) -> None:
    """Replace ``old`` by ``new`` where ``owner`` holds it, and record it on ``container`` (the
    layer that is saved as one config entry) under ``path``, relative to it
    (``inner/token``, ``fields[0]``): layers nested in a custom layer are rebuilt by its
    ``__init__``, so the outermost one must carry the record."""
    from graphkit import _keras_api
    from graphkit.layers import onehot_embedding

    _keras_api.replace_sublayer(owner, attribute, key, old, new)
    _keras_api.replace_in_graphs(container, old, new)
    original = swaps_of(container).get(path)
    back_to_user = original is not None and onehot_embedding.embedding_class(type(old)) is type(new)
    record(container, path, None if back_to_user else registered_name(type(new)))


def resolve(obj, path: str, own: set[int] | None = None):
    """(owner, attribute, key, layer) at ``path`` (``inner/token``, ``fields[0]``) below ``obj``.

    A path comes from a file: every step must be one of ``obj``'s own sublayers (never a
    module, a function or anything else it reaches; private holders such as KerasHub's
    ``_token_embedding`` are fine when they hold such a layer, dunder names never), and
    lists, tuples and dicts are the only containers it indexes."""
    import keras

    from graphkit import _keras_api

    if own is None:  # ids of obj's sublayers (taken before any swap: a layer held twice)
        own = {id(x) for x in _keras_api.flatten_layers(obj, include_self=True)}
    owner = obj
    parts = path.split("/")
    for i, part in enumerate(parts):
        attribute, key = parse_path(part)
        if attribute.startswith("__"):
            raise ValueError(f"graphkit>Swapped: refused attribute path {path!r}")
        holder = vars(owner).get(attribute)
        if key is None:
            layer = holder
        elif isinstance(holder, (list, tuple)) and isinstance(key, int) and key < len(holder):
            layer = holder[key]
        elif isinstance(holder, dict) and key in holder:
            layer = holder[key]
        else:
            layer = None
        if not isinstance(layer, keras.layers.Layer) or id(layer) not in own:
            raise ValueError(f"graphkit>Swapped: {path!r} is not a sublayer of {obj.name!r}")
        if i == len(parts) - 1:
            return owner, attribute, key, layer
        owner = layer
    raise ValueError(f"bad attribute path {path!r}")


def registered_name(cls: type) -> str:
    import keras

    return keras.saving.get_registered_name(cls)


def twin(layer, cls: type):
    """A new ``cls`` layer with ``layer``'s config, built, holding ``layer``'s weights.

    LoRA is left out: the rules let only a layer whose adapters add nothing get here (see
    ``graphkit.rules.base.lora_adapters_zero``), whose table is then the whole of it."""
    config = dict(layer.get_config())
    config.pop("lora_rank", None)
    config.pop("lora_alpha", None)
    new = cls.from_config(config)
    if layer.built:
        new.build()
        old = {
            v.path.split("/")[-1]: v
            for v in layer.weights
            if not v.path.split("/")[-1].startswith("lora_")
        }
        mine = [v.path.split("/")[-1] for v in new.weights]
        if sorted(mine) != sorted(old):
            raise ValueError(f"{cls.__name__} does not hold {type(layer).__name__}'s weights")
        for variable, name in zip(new.weights, mine):  # by name: embeddings, reverse_embeddings
            variable.assign(old[name])
    new.trainable = layer.trainable
    return new


def _register_loader():
    import keras

    from graphkit.layers.onehot_embedding import (
        OneHotEmbedding,
        OneHotReversibleEmbedding,
        embedding_class,
    )

    # the only classes a file may ask for: graphkit's twins of Keras' own Embeddings
    TWINS = {
        "graphkit>OneHotEmbedding": OneHotEmbedding,
        "graphkit>OneHotReversibleEmbedding": OneHotReversibleEmbedding,
    }

    @keras.saving.register_keras_serializable(package="graphkit", name="Swapped")
    class Swapped(keras.layers.Layer):
        """Loader only: rebuilds the user's layer and applies the recorded swaps."""

        @classmethod
        def from_config(cls, config):
            from graphkit import _keras_api

            obj = keras.saving.deserialize_keras_object(config["layer"])
            twins: dict[int, object] = {}  # a layer held twice gets one twin
            own = {id(x) for x in _keras_api.flatten_layers(obj, include_self=True)}
            for path, registered in (config.get("swaps") or {}).items():
                owner, attribute, key, old = resolve(obj, path, own)
                target = TWINS.get(registered)
                if target is None or embedding_class(target) is not type(old):
                    raise ValueError(
                        f"graphkit>Swapped: {path!r} holds a {type(old).__name__}, which "
                        f"graphkit never swaps for {registered!r}"
                    )
                if id(old) not in twins:
                    twins[id(old)] = (old, twin(old, target))
                _keras_api.replace_sublayer(owner, attribute, key, old, twins[id(old)][1])
                _keras_api.replace_in_graphs(obj, old, twins[id(old)][1])
                record(obj, path, registered)
            return obj

    return Swapped


Swapped = None


def register() -> None:
    """Register the loader (``import graphkit.layers`` does it)."""
    global Swapped
    if Swapped is None:
        Swapped = _register_loader()
