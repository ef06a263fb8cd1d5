"""deepix.keras: Keras programs run on PyTorch with only their imports changed."""
import json
import os
import zipfile

import numpy as np
import pytest
import torch

from deepix.errors import UserError

LISTING = """
from keras.models import Sequential
from keras.layers import Conv2D, MaxPooling2D, Flatten, Dense, Dropout

model = Sequential()
model.add(Conv2D(32, kernel_size=(3, 3), activation='relu', input_shape=(28, 28, 1)))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Conv2D(64, kernel_size=(3, 3), activation='relu'))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dense(64, activation='relu'))
model.add(Dropout(0.5))
model.add(Dense(10, activation='softmax'))
model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
model.fit(x_train, y_train, batch_size=32, epochs=10, validation_data=(x_val, y_val))
"""

SUMMARY_ROWS = [
    ("conv2d (Conv2D)", "(None, 26, 26, 32)", "320"),
    ("max_pooling2d (MaxPooling2D)", "(None, 13, 13, 32)", "0"),
    ("conv2d_1 (Conv2D)", "(None, 11, 11, 64)", "18,496"),
    ("max_pooling2d_1 (MaxPooling2D)", "(None, 5, 5, 64)", "0"),
    ("flatten (Flatten)", "(None, 1600)", "0"),
    ("dense (Dense)", "(None, 64)", "102,464"),
    ("dropout (Dropout)", "(None, 64)", "0"),
    ("dense_1 (Dense)", "(None, 10)", "650"),
]


@pytest.fixture(scope="module")
def mnist():
    """mnist-5k as a Keras user holds it: (N, 28, 28, 1) floats in [0, 1] and one-hot labels."""
    from deepix.data.builtin import load_builtin
    from deepix.keras.utils import to_categorical
    ds = load_builtin("mnist-5k", 0.1, 0.2, 0)
    images = lambda s: s.x.numpy().transpose(0, 2, 3, 1).astype("float32") / 255  # noqa: E731
    return {"x_train": images(ds.train), "y_train": to_categorical(ds.train.y.numpy(), 10),
            "x_val": images(ds.val), "y_val": to_categorical(ds.val.y.numpy(), 10),
            "x_test": images(ds.test), "labels_test": ds.test.y.numpy(), "labels_train": ds.train.y.numpy()}


@pytest.fixture(autouse=True)
def fresh_names():
    from deepix.keras.utils import clear_session, set_random_seed
    clear_session()
    set_random_seed(0)


def shuffled(mnist, n, seed=0):
    # mnist-5k's splits are sorted by class; Keras's validation_split takes the last rows
    idx = np.random.default_rng(seed).permutation(len(mnist["x_train"]))[:n]
    return mnist["x_train"][idx], mnist["labels_train"][idx]


def run_listing(style: str, mnist, epochs: int = 10) -> dict:
    original = LISTING.replace("from keras.", f"from {style}.")  # as written for Keras or tf.keras
    source = original.replace(f"from {style}.", "from deepix.keras.")
    assert "from deepix.keras.models import Sequential" in source  # only the imports changed
    source = source.replace("epochs=10", f"epochs={epochs}")
    scope = {k: mnist[k] for k in ("x_train", "y_train", "x_val", "y_val")}
    exec(source, scope)
    return scope


def test_reference_listing_learns_like_keras(mnist, capsys):
    scope = run_listing("keras", mnist)
    model = scope["model"]
    out = capsys.readouterr().out
    assert "Epoch 10/10" in out and "110/110" in out and "val_accuracy: " in out
    history = model.history.history
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 10 for v in history.values())
    assert history["loss"][-1] < history["loss"][0]
    assert model.count_params() == 121_930
    probs = model.predict(mnist["x_test"])
    assert probs.shape == (1000, 10) and probs.dtype == np.float32
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    accuracy = (probs.argmax(1) == mnist["labels_test"]).mean()
    # Keras 3 on TensorFlow: 96.4% with this listing and split; deepix 95.9% to 96.4% by host
    assert accuracy >= 0.955, accuracy

    model.summary()
    text = capsys.readouterr().out
    assert text.startswith('Model: "sequential"')
    assert "Layer (type)" in text and "Output Shape" in text and "Param #" in text
    lines = text.splitlines()
    for name, shape, params in SUMMARY_ROWS:
        row = next(line for line in lines if name in line)
        assert shape in row and row.rstrip(" │").endswith(params)
    assert " Total params: 121,930 (476.29 KB)" in lines
    assert " Trainable params: 121,930 (476.29 KB)" in lines
    assert " Non-trainable params: 0 (0.00 B)" in lines


def test_reference_listing_with_tensorflow_keras_imports(mnist, capsys):
    scope = run_listing("tensorflow.keras", mnist, epochs=2)
    model = scope["model"]
    history = model.history.history
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"} and model.count_params() == 121_930
    assert len(history["loss"]) == 2 and history["val_accuracy"][-1] > 0.85
    assert "Epoch 2/2" in capsys.readouterr().out


def test_keras_module_style(mnist):
    from deepix import keras  # as `from tensorflow import keras`
    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.MaxPooling2D(), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    h = model.fit(mnist["x_train"], mnist["y_train"], batch_size=64, epochs=2, verbose=0)
    assert h.history["accuracy"][-1] > 0.8
    assert isinstance(model, torch.nn.Module)


def test_module_is_nchw_torch_model(mnist):
    from deepix.keras.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from deepix.keras.models import Sequential
    model = Sequential([Conv2D(4, 3, activation="relu", input_shape=(28, 28, 1)), MaxPooling2D(),
                        Flatten(), Dense(10, activation="softmax")])
    model.eval()
    x = torch.from_numpy(mnist["x_val"][:16])
    nchw = x.permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        probs, logits = model(nchw), model.forward_logits(nchw)
        # pooling before the activation is an optimisation that must not change a thing
        y = nchw
        for layer in model.layers:
            y = layer(y)
    assert torch.allclose(probs, logits.softmax(1))
    assert torch.equal(probs, y)
    assert np.allclose(model.predict(mnist["x_val"][:16]), probs.numpy(), atol=1e-2)  # predict may run in bf16
    json.dumps(model.get_config())
    from deepix.keras.models import model_from_config
    clone = model_from_config(model.get_config())
    clone.load_state_dict(model.state_dict())
    clone.eval()
    with torch.no_grad():
        assert torch.equal(clone(nchw), probs)
    assert [w.shape for w in model.get_weights()] == [(3, 3, 1, 4), (4,), (676, 10), (10,)]


def test_grey_images_without_channel_axis(mnist):
    from deepix.keras.layers import Conv2D, Dense, Flatten
    from deepix.keras.models import Sequential
    x, y = shuffled(mnist, 256)
    model = Sequential([Conv2D(4, 3, activation="relu"), Flatten(), Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[..., 0], y, epochs=1, verbose=0)  # (N, 28, 28): shape from the first batch
    assert model.input_shape == (None, 28, 28, 1)
    assert model.predict(x[:5, ..., 0]).shape == (5, 10)
    assert model.predict(x[:5]).shape == (5, 10)


def test_batchnorm_augmentation_cnn_with_validation_split(mnist, capsys):
    from deepix.keras import layers
    from deepix.keras.models import Sequential
    x, y = shuffled(mnist, 2000)
    x = np.round(x * 255)  # raw pixel values, scaled by the Rescaling layer
    # momentum 0.9: Keras's 0.99 needs more than this short run's 200 steps to settle the moving statistics
    model = Sequential([
        layers.Input(shape=(28, 28, 1)),
        layers.Rescaling(1 / 255),
        layers.RandomRotation(0.05), layers.RandomZoom(0.1), layers.RandomTranslation(0.1, 0.1),
        layers.Conv2D(16, 3, padding="same", use_bias=False), layers.BatchNormalization(momentum=0.9),
        layers.Activation("relu"), layers.MaxPooling2D(),
        layers.Conv2D(32, 3, padding="same"), layers.BatchNormalization(momentum=0.9), layers.ReLU(),
        layers.MaxPooling2D(), layers.Flatten(), layers.Dropout(0.2), layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    text = capsys.readouterr().out
    assert "(None, 14, 14, 16)" in text and " Non-trainable params: 96 (384.00 B)" in text
    h = model.fit(x, y, batch_size=32, epochs=4, validation_split=0.2, verbose=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Epoch ")]
    assert len(lines) == 4 and lines[-1].startswith("Epoch 4/4 - 50/50 - ")
    assert h.history["val_accuracy"][-1] > 0.8
    # validation is the last 20%, unshuffled, scored without augmentation or dropout
    loss, accuracy = model.evaluate(x[1600:], y[1600:], verbose=0)
    assert loss == pytest.approx(h.history["val_loss"][-1], rel=1e-4)
    assert accuracy == pytest.approx(h.history["val_accuracy"][-1], abs=1e-6)
    assert np.array_equal(model.predict(x[:32]), model.predict(x[:32]))  # augmentation is off in predict
    batch = torch.from_numpy(x[:8]).float().permute(0, 3, 1, 2)
    augment = [model.layers[i] for i in (1, 2, 3)] + [layers.RandomFlip()]
    for layer in augment:
        layer.train()
        changed = layer(batch)
        assert changed.shape == batch.shape and not torch.equal(changed, batch), layer
        layer.eval()
        assert torch.equal(layer(batch), batch)


def fake_metric(values):
    """A callback that logs a chosen `val_fake` per epoch, so that monitors see a known sequence."""
    from deepix.keras.callbacks import LambdaCallback
    return LambdaCallback(on_epoch_end=lambda epoch, logs: logs.update(val_fake=values[epoch]))


def small_model(lr=0.01):
    from deepix.keras.layers import Dense, Flatten
    from deepix.keras.models import Sequential
    from deepix.keras.optimizers import Adam
    model = Sequential([Flatten(input_shape=(28, 28, 1)), Dense(32, activation="relu"),
                        Dense(10, activation="softmax")])
    model.compile(optimizer=Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_early_stopping_restores_the_best_epoch(mnist):
    from deepix.keras.callbacks import Callback, EarlyStopping
    x, y = shuffled(mnist, 512)
    snapshots = []

    class Keep(Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(self.model.get_weights())

    model = small_model()
    stop = EarlyStopping(monitor="val_fake", mode="min", patience=2, restore_best_weights=True)
    h = model.fit(x, y, epochs=10, verbose=0, callbacks=[fake_metric([3, 1, 2, 4, 5, 0, 0, 0, 0, 0]), Keep(), stop])
    assert h.history["val_fake"] == [3, 1, 2, 4]  # stopped after two epochs without improvement
    assert stop.best_epoch == 1
    for now, best, last in zip(model.get_weights(), snapshots[1], snapshots[-1]):
        assert np.array_equal(now, best)
    assert not all(np.array_equal(a, b) for a, b in zip(snapshots[1], snapshots[-1]))


def test_early_stopping_on_val_loss(mnist):
    from deepix.keras.callbacks import EarlyStopping
    x, y = shuffled(mnist, 300)
    model = small_model(lr=0.02)
    h = model.fit(x[:150], y[:150], epochs=40, verbose=0, validation_data=(x[150:], y[150:]),
                  callbacks=[EarlyStopping(patience=2, restore_best_weights=True)])
    assert len(h.history["loss"]) < 40
    assert model.evaluate(x[150:], y[150:], verbose=0)[0] == pytest.approx(min(h.history["val_loss"]), rel=1e-4)


def test_model_checkpoint_keeps_only_the_best(mnist, tmp_path):
    from deepix.keras.callbacks import Callback, ModelCheckpoint
    from deepix.keras.models import load_model
    x, y = shuffled(mnist, 256)
    predictions = []

    class Predict(Callback):
        def on_epoch_end(self, epoch, logs=None):
            predictions.append(self.model.predict(x[:20]))

    best = tmp_path / "best.keras"
    every = str(tmp_path / "ckpt-{epoch:02d}-{val_fake:.1f}.keras")
    model = small_model()
    model.fit(x, y, epochs=5, verbose=0, callbacks=[
        fake_metric([3, 1, 2, 0.5, 4]), Predict(),
        ModelCheckpoint(best, monitor="val_fake", mode="min", save_best_only=True),
        ModelCheckpoint(every, monitor="val_fake", mode="min", save_best_only=True)])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ckpt")) == [
        "ckpt-01-3.0.keras", "ckpt-02-1.0.keras", "ckpt-04-0.5.keras"]
    assert np.array_equal(load_model(best).predict(x[:20]), predictions[3])
    weights_only = tmp_path / "w.weights.safetensors"
    model.fit(x, y, epochs=1, verbose=0, callbacks=[ModelCheckpoint(weights_only, save_weights_only=True,
                                                                     monitor="loss")])
    fresh = small_model()
    fresh.build((None, 28, 28, 1))
    fresh.load_weights(weights_only)
    assert np.array_equal(fresh.predict(x[:20]), model.predict(x[:20]))


def test_reduce_lr_on_plateau_lowers_the_rate(mnist):
    from deepix.keras.callbacks import ReduceLROnPlateau
    x, y = shuffled(mnist, 256)
    model = small_model(lr=0.01)
    h = model.fit(x, y, epochs=5, verbose=0, callbacks=[
        fake_metric([1.0, 1.0, 1.0, 1.0, 1.0]),
        ReduceLROnPlateau(monitor="val_fake", mode="min", factor=0.5, patience=1)])
    # logged as each epoch ran, before that epoch's reduction (as Keras logs it)
    assert h.history["learning_rate"] == pytest.approx([0.01, 0.01, 0.005, 0.0025, 0.00125])
    assert model.optimizer.torch.param_groups[0]["lr"] == pytest.approx(0.000625)


def test_save_and_load_round_trip(mnist, tmp_path):
    from deepix.keras import layers
    from deepix.keras.models import Sequential, load_model
    x, y = shuffled(mnist, 512)
    model = Sequential([layers.Input(shape=(28, 28, 1)), layers.Conv2D(8, 3, padding="same", strides=2),
                        layers.BatchNormalization(), layers.ReLU(), layers.AveragePooling2D(padding="same"),
                        layers.Flatten(), layers.Dense(10, activation="softmax")])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    expected = model.predict(x)
    for name in ("model.keras", "model_folder"):
        model.save(tmp_path / name)
        again = load_model(tmp_path / name)
        assert np.array_equal(again.predict(x), expected)
        assert again.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)
        again.fit(x, y, epochs=1, verbose=0)  # compiled as saved
    with zipfile.ZipFile(tmp_path / "model.keras") as z:
        assert sorted(z.namelist()) == ["config.json", "model.safetensors"]  # JSON and tensors: no pickle
        assert json.loads(z.read("config.json"))["config"]["layers"][0]["class_name"] == "Conv2D"
    assert sorted(os.listdir(tmp_path / "model_folder")) == ["config.json", "model.safetensors"]


def test_sparse_labels_and_shapes_of_evaluate_and_predict(mnist):
    x, y = shuffled(mnist, 1000)
    model = small_model(lr=0.003)
    h = model.fit(x, y.reshape(-1, 1), epochs=3, batch_size=32, verbose=0)  # (N, 1) integer labels too
    assert h.history["accuracy"][-1] > 0.85
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert isinstance(loss, float) and 0.85 < accuracy <= 1
    assert set(model.evaluate(x, y, verbose=0, return_dict=True)) == {"loss", "accuracy"}
    assert model.predict(x[:7]).shape == (7, 10)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert isinstance(model.evaluate(x, y, verbose=0), float)  # no metrics: the loss alone


def test_binary_crossentropy_with_sigmoid(mnist):
    from deepix.keras.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from deepix.keras.models import Sequential
    x, labels = shuffled(mnist, 1000)
    y = (labels == 0).astype("float32")  # zero or not
    model = Sequential([Conv2D(8, 3, activation="relu", input_shape=(28, 28, 1)), MaxPooling2D(),
                        Flatten(), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    h = model.fit(x, y, epochs=5, verbose=0, validation_split=0.2)
    assert h.history["val_accuracy"][-1] > 0.95  # 90% of the images are not zeros
    p = model.predict(x[:10])
    assert p.shape == (10, 1) and ((p >= 0) & (p <= 1)).all()
    assert model.head == "sigmoid"


def test_padding_strides_and_pooling_shapes():
    from deepix.keras import layers
    from deepix.keras.models import Sequential
    cases = [(layers.Conv2D(2, 3, strides=2, padding="same"), (7, 7, 2)),
             (layers.Conv2D(2, 4, padding="same"), (13, 13, 2)),
             (layers.Conv2D(2, (3, 5), strides=(2, 1)), (6, 9, 2)),
             (layers.Conv2D(2, 3, dilation_rate=2, padding="same"), (13, 13, 2)),
             (layers.MaxPooling2D(2, padding="same"), (7, 7, 1)),
             (layers.AveragePooling2D(3, strides=2), (6, 6, 1)),
             (layers.GlobalMaxPooling2D(), (1,))]
    x = np.random.default_rng(0).random((2, 13, 13, 1)).astype("float32")
    for layer, shape in cases:
        model = Sequential([layers.Input(shape=(13, 13, 1)), layer])
        assert model.output_shape == (None, *shape)
        assert model.predict(x).shape == (2, *shape)
    # 'same' pooling pads the end of odd sizes, and averages only real pixels, as Keras does
    grid = np.arange(1, 10, dtype="float32").reshape(1, 3, 3, 1)
    model = Sequential([layers.Input(shape=(3, 3, 1)), layers.MaxPooling2D(padding="same")])
    assert model.predict(grid)[0, :, :, 0].tolist() == [[5, 6], [8, 9]]
    model = Sequential([layers.Input(shape=(3, 3, 1)), layers.AveragePooling2D(padding="same")])
    assert model.predict(grid)[0, :, :, 0].tolist() == [[3, 4.5], [7.5, 9]]


def test_keras_defaults():
    from deepix.keras import layers, optimizers
    assert optimizers.get("adam").torch is None and optimizers.Adam().hyper["epsilon"] == 1e-7
    assert optimizers.get("sgd").learning_rate == 0.01 and optimizers.RMSprop().hyper["rho"] == 0.9
    assert optimizers.AdamW().weight_decay == 0.004
    dense = layers.Dense(1000)
    dense.setup((1000,))
    limit = (6 / 2000) ** 0.5  # glorot-uniform
    assert dense.weight.abs().max() <= limit and dense.weight.abs().max() > 0.9 * limit
    assert torch.count_nonzero(dense.bias) == 0
    bn = layers.BatchNormalization()
    assert bn.momentum == 0.99 and bn.epsilon == 1e-3


def test_unsupported_features_say_so():
    from deepix.keras import layers
    from deepix.keras.models import Sequential
    with pytest.raises(UserError, match=r"does not support Conv2D\(kernel_regularizer=\.\.\.\) yet"):
        layers.Conv2D(8, 3, kernel_regularizer="l2")
    with pytest.raises(UserError, match=r"does not support Conv2D\(data_format='channels_first'\)"):
        layers.Conv2D(8, 3, data_format="channels_first")
    with pytest.raises(UserError, match=r"does not support layers\.LSTM yet"):
        from deepix.keras.layers import LSTM  # noqa: F401
    with pytest.raises(UserError, match=r"RandomRotation\(fill_mode='wrap'\)"):
        layers.RandomRotation(0.1, fill_mode="wrap")
    with pytest.raises(UserError, match="functional API"):
        from deepix.keras.models import Model
        Model(inputs="x", outputs="y")
    model = Sequential([layers.Dense(3, input_shape=(4,))])
    with pytest.raises(UserError, match="HDF5"):
        model.save("model.h5")
    with pytest.raises(UserError, match="not compiled"):
        model.fit(np.zeros((4, 4)), np.zeros((4, 3)), verbose=0)
    model.compile("adam", "categorical_crossentropy")
    with pytest.raises(UserError, match="to_categorical"):
        model.fit(np.zeros((4, 4)), np.zeros(4), verbose=0)
    with pytest.raises(UserError, match=r"takes inputs of shape \(None, 4\)"):
        model.fit(np.zeros((4, 5)), np.zeros((4, 3)), verbose=0)
    with pytest.raises(UserError, match="smaller than its 3x3 kernel"):
        Sequential([layers.Conv2D(2, 3, input_shape=(2, 2, 1))])


def test_deepix_train_accepts_a_keras_model(tmp_path):
    import deepix
    from deepix.keras.layers import Conv2D, Dense, Flatten
    from deepix.keras.models import Sequential
    net = Sequential([Conv2D(8, 3, activation="relu", input_shape=(8, 8, 1)), Flatten(),
                      Dense(10, activation="softmax")])
    result = deepix.train(data="digits", model=net, epochs=2, quiet=True, project=str(tmp_path), threads=1)
    assert result["test"]["accuracy"] > 0.3


def test_keras_model_trains_under_deepix_train_and_reloads(tmp_path):
    import deepix
    from deepix.keras.layers import Conv2D, Dense, Flatten
    from deepix.keras.models import Sequential
    m = Sequential()
    m.add(Conv2D(8, kernel_size=(3, 3), activation="relu", input_shape=(8, 8, 1)))
    m.add(Flatten())
    m.add(Dense(10, activation="softmax"))
    r = deepix.train(model=m, data="digits", epochs=3, quiet=True, project=str(tmp_path), threads=1)
    assert r["test"]["accuracy"] > 0.5
    assert (r["run"] / "model.json").is_file()
    again = deepix.load(r["run"]).predict(np.zeros((8, 8), np.uint8))
    assert abs(sum(again[0]["probabilities"]) - 1) < 1e-4
