import numpy as np
import pytest

from recsys.errors import ConfigError
from recsys.stages.embeddings import TwoTower
from tests.stages.conftest import interactions


def two_taste_data():
    """Users 0-9 like items 0-4, users 10-19 like items 5-9; each saw 3 of their 5."""
    rng = np.random.default_rng(0)
    pairs = []
    for u in range(20):
        block = np.arange(5) + (0 if u < 10 else 5)
        pairs += [(u, int(i)) for i in rng.choice(block, 3, replace=False)]
    return interactions(pairs)


@pytest.mark.parametrize("loss", ["softmax", "bpr"])
def test_two_tower_learns_two_tastes(loss):
    train = two_taste_data()
    model = TwoTower(dim=8, epochs=60, batch_size=16, n_negatives=4, loss=loss, seed=0)
    model.fit(train)
    scores = model.user_embeddings_ @ model.item_embeddings_.T
    own = np.where(np.arange(20)[:, None] < 10, np.arange(10) < 5, np.arange(10) >= 5)
    # every user scores its own block above the other on average
    assert (np.where(own, scores, 0).sum(1) / 5 > np.where(~own, scores, 0).sum(1) / 5).all()


def test_two_tower_is_reproducible_for_a_seed_and_shapes_are_dim():
    train = two_taste_data()
    a = TwoTower(dim=6, epochs=3, batch_size=8, seed=1).fit(train)
    b = TwoTower(dim=6, epochs=3, batch_size=8, seed=1).fit(train)
    assert a.user_embeddings_.shape == (20, 6)
    assert a.item_embeddings_.shape == (10, 6)
    np.testing.assert_array_equal(a.item_embeddings_, b.item_embeddings_)
    # last column: 1 for users (times the item bias column)
    np.testing.assert_array_equal(a.user_embeddings_[:, -1], 1.0)


def test_user_without_history_falls_back_to_item_bias():
    train = interactions([(0, 0), (0, 1), (2, 1)])  # user 1 never interacts
    model = TwoTower(dim=4, epochs=2, batch_size=2, n_negatives=1).fit(train)
    np.testing.assert_array_equal(model.user_embeddings_[1], [0, 0, 0, 1])


def test_save_and_load_round_trip(tmp_path):
    model = TwoTower(dim=4, epochs=1).fit(two_taste_data())
    model.save(tmp_path)
    loaded = TwoTower.load(tmp_path)
    np.testing.assert_array_equal(loaded.user_embeddings_, model.user_embeddings_)
    assert loaded.get_params() == model.get_params()


def test_bad_parameters():
    with pytest.raises(ConfigError, match="loss"):
        TwoTower(loss="hinge").fit(two_taste_data())
    with pytest.raises(ConfigError, match="dim"):
        TwoTower(dim=1).fit(two_taste_data())


def test_items_never_trained_on_rank_after_every_trained_item():
    train = interactions([(0, 0), (1, 0), (1, 1), (2, 1), (2, 2)], n_items=5)  # 3, 4 unseen
    model = TwoTower(dim=4, epochs=5, batch_size=2, n_negatives=2).fit(train)
    scores = model.user_embeddings_ @ model.item_embeddings_.T
    assert (scores[:, 3:].max(1) < scores[:, :3].min(1)).all()
