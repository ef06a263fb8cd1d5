import torch

from deepix.data.augment import PRESETS, make_augment
from deepix.data.loader import epoch_generator


def test_same_generator_same_augmentation_and_shape():
    x = torch.rand(16, 1, 28, 28)
    aug = PRESETS["strong"]
    a = aug(x, epoch_generator(0, 3))
    b = aug(x, epoch_generator(0, 3))
    c = aug(x, epoch_generator(0, 4))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_digits_preset_never_flips_and_auto_picks_it():
    assert not PRESETS["digits"].hflip and make_augment("auto", "digits") == PRESETS["digits"]
    assert make_augment("auto", "natural").hflip


def test_settings_override_the_preset():
    aug = make_augment("digits", "digits", degrees=30, hflip="on", translate=-1)
    assert aug.degrees == 30 and aug.hflip and aug.translate == PRESETS["digits"].translate
    assert PRESETS["digits"].degrees == 10  # presets stay untouched


def test_translation_moves_content():
    x = torch.zeros(1, 1, 20, 20)
    x[..., 8:12, 8:12] = 1
    from deepix.data.augment import Augment
    moved = Augment(translate=0.2)(x.expand(64, -1, -1, -1).clone(), epoch_generator(1, 0))
    centres = (moved[:, 0].sum(1).argmax(1)).float()
    assert centres.std() > 0.5  # the square lands in different places
