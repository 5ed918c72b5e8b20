"""verify as proof: index ranges from the data flow, every table row covered, lookups read
values, index inputs declared as floats, masks, --range, and changes that no sample hides."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers, ops

import graphkit
from graphkit import GraphkitError
from graphkit.backends import KerasBackend, OnnxBackend
from graphkit.verification import verify
from graphkit.verification.inputs import COVER_LIMIT


@keras.saving.register_keras_serializable(package="graphkit_tests_proof")
class TokenAndPositionEmbedding(layers.Layer):
    """keras.io's transformer classifier layer: tokens and positions (``ops.arange``)."""

    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.maxlen, self.vocab_size, self.embed_dim = maxlen, vocab_size, embed_dim
        self.token_emb = layers.Embedding(vocab_size, embed_dim, name="token_emb")
        self.pos_emb = layers.Embedding(maxlen, embed_dim, name="pos_emb")

    def build(self, input_shape):
        self.token_emb.build(input_shape)
        self.pos_emb.build((self.maxlen,))

    def call(self, x):
        positions = self.pos_emb(ops.arange(0, ops.shape(x)[-1], 1))
        return self.token_emb(x) + positions

    def get_config(self):
        return {
            **super().get_config(),
            "maxlen": self.maxlen,
            "vocab_size": self.vocab_size,
            "embed_dim": self.embed_dim,
        }


def transformer(vocab=1500, maxlen=32, dim=8, dtype="int32", seed=0):
    keras.utils.set_random_seed(seed)
    tokens = keras.Input((maxlen,), dtype=dtype, name="tokens")
    x = TokenAndPositionEmbedding(maxlen, vocab, dim, name="tok_pos")(tokens)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(tokens, layers.Dense(2, name="out")(x), name="tpe_classifier")


def twin_with(model, table_edit):
    """A copy of ``model`` whose token table went through ``table_edit`` (in place)."""
    other = keras.models.clone_model(model)
    other.set_weights(model.get_weights())
    emb = other.get_layer("tok_pos").token_emb
    table = emb.embeddings.numpy()
    table_edit(table)
    emb.embeddings.assign(table)
    return other


@pytest.fixture(scope="module")
def tpe():
    return transformer()


def test_the_token_table_sets_the_range_and_the_position_table_none(tpe):
    (spec,) = KerasBackend(tpe).inputs
    assert (spec.role, spec.low, spec.vocab) == ("index", 0, 1500)
    assert [t.table for t in spec.tables] == ["tok_pos/token_emb"]
    assert KerasBackend(tpe).dataflow.unreached == ["tok_pos/pos_emb"]


def test_synthesized_tokens_cover_every_row_and_real_token_files_are_taken(tpe):
    report = verify(tpe, tpe)
    assert report.exact and report.coverage[0].covered == 1500
    assert "bit for bit on 256 samples covering every row of 1 table" in report.format()
    tokens = np.random.default_rng(1).integers(0, 1500, size=(12, 32)).astype("int32")
    assert tokens.max() >= 32  # once refused: "valid indices are 0..31"
    given = verify(tpe, tpe, {"tokens": tokens})
    assert given.equivalent
    assert given.coverage[0].covered == len(np.unique(tokens))  # counted from the data
    assert "covering" in given.basis() and "/1500 rows of 'tok_pos/token_emb'" in given.basis()


def test_a_changed_token_row_range_fails_and_is_named(tpe):
    def shift(table):
        table[1000:1500] += 0.5

    report = verify(tpe, twin_with(tpe, shift))
    assert not report.equivalent
    assert report.outputs[0].exceeding > 0  # rows 1000.. were read
    [pair] = report.weights.differing
    assert "tok_pos/token_emb" in pair.reference and pair.rows == "1000..1499"
    assert report.divergence is not None and report.divergence.first == "tok_pos"
    assert "first difference at layer 'tok_pos'" in report.format()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_one_element_changed_by_1e_3_fails_with_every_seed(seed):
    keras.utils.set_random_seed(0)
    tokens = keras.Input((8,), dtype="int32", name="tokens")
    x = layers.Embedding(2000, 4, name="table")(tokens)
    model = keras.Model(tokens, layers.Dense(1, name="y")(layers.Flatten()(x)))
    other = keras.models.clone_model(model)
    other.set_weights(model.get_weights())
    table = other.get_layer("table").embeddings.numpy()
    table[1234, 2] += 1e-3
    other.get_layer("table").embeddings.assign(table)
    report = verify(model, other, seed=seed)
    assert not report.equivalent
    assert report.samples >= 250  # 2000 rows over 8 positions: the sample count grew
    assert report.coverage[0].covered == 2000
    assert report.outputs[0].exceeding > 0  # row 1234 was read, whatever the seed
    [pair] = report.weights.differing
    assert pair.reference == "table/embeddings" and pair.rows == "1234"


def test_the_sample_count_grows_only_up_to_its_limit_and_says_so():
    tokens = keras.Input((1,), dtype="int32", name="tokens")
    model = keras.Model(tokens, layers.Embedding(COVER_LIMIT + 500, 2)(tokens))
    report = verify(model, model, samples=10, batch_size=2048)
    assert report.samples == COVER_LIMIT
    assert report.coverage[0].covered == COVER_LIMIT  # every sample a new row
    assert f"covering {COVER_LIMIT}/{COVER_LIMIT + 500} rows" in report.basis()
    bigger = verify(model, model, samples=COVER_LIMIT + 500, batch_size=4096)  # --samples raises it
    assert bigger.coverage[0].complete


def test_lookup_inputs_are_values_and_unknown_ones_are_valid():
    ids = keras.Input((3,), dtype="int64", name="ids")
    lookup = layers.IntegerLookup(
        vocabulary=[7, 11, 42, 1000, 31337], output_mode="one_hot", name="lookup"
    )
    model = keras.Model(ids, layers.Dense(2, name="y")(layers.Flatten()(lookup(ids))))
    (spec,) = KerasBackend(model).inputs
    assert spec.role == "lookup" and spec.values == (7, 11, 42, 1000, 31337)
    given = np.array([[7, 11, 42], [1000, 31337, 5], [-3, 7, 7]], dtype="int64")
    assert verify(model, model, {"ids": given}).equivalent  # -3 and 5 go to the OOV index
    converted = graphkit.convert(model, "onehot-dense").model
    report = verify(model, converted)
    assert report.equivalent and report.coverage[0].covered == 5  # every vocabulary value


def test_an_index_input_declared_as_float_gets_whole_numbers_in_range():
    model = transformer(vocab=300, dtype="float32")
    (spec,) = KerasBackend(model).inputs
    assert spec.role == "index" and spec.dtype == "float32" and spec.vocab == 300
    batch = next(graphkit.verification.synthesize([spec], 4, 4, 32, 0))
    x = batch["tokens"]
    assert x.dtype == np.float32 and np.all(x == np.trunc(x)) and 0 <= x.min() and x.max() < 300
    # an exact swap of the table is exact on such inputs (floats gave 0.0108 once)
    report = verify(model, graphkit.convert(model, "onehot-dense").model)
    assert report.exact, report.format()


def backbone_task():
    """A Functional subclass nested in a task model, as KerasHub builds them: a token table,
    a 2-row segment table, positions, and a padding mask that no table reads."""

    class Backbone(keras.Model):
        def __init__(self, **kwargs):
            token_ids = keras.Input((None,), dtype="int32", name="token_ids")
            segment_ids = keras.Input((None,), dtype="int32", name="segment_ids")
            padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
            x = layers.Embedding(1000, 4, name="token_embedding")(token_ids)
            x = x + layers.Embedding(2, 4, name="segment_embedding")(segment_ids)
            mask = ops.expand_dims(ops.cast(padding_mask, "float32"), -1)
            pooled = ops.sum(x * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)
            super().__init__(
                {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask},
                pooled,
                **kwargs,
            )

    backbone = Backbone(name="backbone")
    inputs = {
        name: keras.Input((None,), dtype="int32", name=name)
        for name in ("token_ids", "segment_ids", "padding_mask")
    }
    return keras.Model(inputs, layers.Dense(3, name="logits")(backbone(inputs)))


def test_nested_functional_subclass_inputs_take_their_own_tables_ranges():
    model = backbone_task()
    specs = {s.name: s for s in KerasBackend(model).inputs}
    assert specs["token_ids"].vocab == 1000 and specs["segment_ids"].vocab == 2
    assert specs["padding_mask"].role == "mask"
    batch = next(graphkit.verification.synthesize(list(specs.values()), 6, 6, 10, 0))
    mask = batch["padding_mask"]
    assert set(np.unique(mask)) <= {0, 1} and np.all(mask[:, 0] == 1)
    assert np.all(np.diff(mask, axis=1) <= 0)  # ones, then a zero tail
    report = verify(model, model)
    assert report.exact and {c.table: c.covered for c in report.coverage} == {
        "backbone/token_embedding": 1000,  # the paths graphkit inspect prints
        "backbone/segment_embedding": 2,
    }


def test_an_integer_input_no_table_reads_asks_for_a_range():
    tokens = keras.Input((4,), dtype="int32", name="tokens")
    count = keras.Input((1,), dtype="int32", name="count")
    x = layers.Flatten()(layers.Embedding(10, 2)(tokens))
    x = layers.Concatenate()([x, ops.cast(count, "float32")])
    model = keras.Model([tokens, count], layers.Dense(1)(x))
    with pytest.raises(GraphkitError, match=r"'count'.*ranges=\{'count': \(LOW, HIGH\)\}") as info:
        verify(model, model)
    assert "--range count=LOW:HIGH" in info.value.for_cli()  # the CLI's words
    report = verify(model, model, ranges=["count=3:5"])
    assert report.equivalent
    assert "count (256, 1) int32 in [3, 5)" in report.describe_inputs()
    with pytest.raises(GraphkitError, match="valid indices are 3..4 \\(--range\\)"):
        verify(
            model,
            model,
            {"tokens": np.zeros((2, 4), "int32"), "count": [[1], [3]]},
            ranges={"count": (3, 5)},
        )


def test_values_that_reach_a_table_through_arithmetic_set_no_range():
    tokens = keras.Input((4,), dtype="int32", name="tokens")
    model = keras.Model(tokens, layers.Embedding(10, 2, name="e")(tokens + 1))
    (spec,) = KerasBackend(model).inputs
    assert spec.role is None and "only through other operations" in spec.note
    with pytest.raises(GraphkitError, match="cannot tell which integers are valid"):
        verify(model, model)
    assert verify(model, model, ranges={"tokens": (0, 9)}).exact


def test_onnx_inputs_take_the_range_of_the_gather_that_reads_them(tmp_path, tpe):
    path = tmp_path / "tpe.onnx"
    graphkit.export_onnx(tpe, path)
    (spec,) = OnnxBackend(path).inputs
    assert spec.vocab == 1500  # the token table, not the 32-row position table

    def shift(table):
        table[1000:1500] += 0.5

    bad = tmp_path / "bad.onnx"
    graphkit.export_onnx(twin_with(tpe, shift), bad)
    for reference in (tpe, path):  # Keras vs ONNX and ONNX vs ONNX
        report = verify(reference, bad)
        assert not report.equivalent and report.outputs[0].exceeding > 0
        assert [p.rows for p in report.weights.differing] == ["1000..1499"]
        assert report.divergence is not None and report.divergence.first is not None


def test_a_table_the_model_gathers_from_directly_sets_the_range():
    class DirectTable(layers.Layer):
        def build(self, shape):
            self.table = self.add_weight(shape=(50, 3), name="table")

        def call(self, x):
            return ops.take(self.table, x, axis=0)

    ids = keras.Input((4,), dtype="int32", name="ids")
    model = keras.Model(ids, DirectTable(name="direct")(ids))
    (spec,) = KerasBackend(model).inputs
    assert (spec.role, spec.vocab) == ("index", 50)
    report = verify(model, model)
    assert report.exact and report.coverage[0].covered == 50


def test_positions_into_the_sequence_are_synthesized_within_its_length():
    """KerasHub's ``mask_positions``: indices of a Gather along the sequence axis."""
    tokens = keras.Input((None,), dtype="int32", name="token_ids")
    where = keras.Input((3,), dtype="int32", name="mask_positions")
    hidden = layers.Embedding(40, 4, name="emb")(tokens)
    picked = ops.take_along_axis(hidden, ops.expand_dims(where, -1), axis=1)
    model = keras.Model([tokens, where], layers.Dense(2, name="head")(picked))
    specs = {s.name: s for s in KerasBackend(model).inputs}
    assert specs["mask_positions"].role == "positions"  # not a mask, though named like one
    report = verify(model, model, seq_len=7)
    assert report.exact
    batch = next(graphkit.verification.synthesize(list(specs.values()), 64, 64, 7, 0))
    assert batch["mask_positions"].min() >= 0 and batch["mask_positions"].max() == 6


def test_given_data_shows_its_own_range_beside_the_tables(tpe):
    tokens = np.full((3, 32), 7, dtype="int32")
    tokens[1, 5], tokens[2, 9] = 1200, 3
    report = verify(tpe, tpe, {"tokens": tokens})
    assert "tokens (3, 32) int32 in [0, 1500), values 3..1200" in report.describe_inputs()
    assert report.to_dict()["fed"]["tokens"]["min"] == 3
    synthesized = verify(tpe, tpe, samples=8)  # synthesized data: the range is the spec's
    assert ", values" not in synthesized.describe_inputs()
