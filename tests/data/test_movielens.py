"""MovieLens in its three official layouts, and clear errors for anything else."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from recsys.data import load_movielens
from recsys.errors import DataError


def test_latest_small_has_the_published_counts(ml_latest_small):
    inter = load_movielens(ml_latest_small)
    assert (len(inter), inter.n_users, inter.n_items) == (100_836, 610, 9_724)
    assert inter.frame["weight"].between(0.5, 5.0).all()
    first, last = pd.to_datetime(inter.timestamps[[0, -1]], unit="s").date.astype(str)
    assert (first, last) == ("1996-03-29", "2018-09-24")
    assert inter.item_category.shape == (9_724,)
    assert inter.name == "movielens"


def test_latest_small_first_genre_is_the_category(ml_latest_small):
    inter = load_movielens(ml_latest_small)
    toy_story = int(np.flatnonzero(inter.item_ids == 1)[0])  # Adventure|Animation|...
    jumanji = int(np.flatnonzero(inter.item_ids == 2)[0])  # Adventure|Children|Fantasy
    heat = int(np.flatnonzero(inter.item_ids == 6)[0])  # Action|Crime|Thriller
    assert inter.item_category[toy_story] == inter.item_category[jumanji]
    assert inter.item_category[toy_story] != inter.item_category[heat]


def test_min_rating_keeps_good_ratings_and_reports_the_rest(ml_latest_small, caplog):
    ratings = pd.read_csv(ml_latest_small / "ratings.csv")
    with caplog.at_level(logging.INFO, logger="recsys.data.movielens"):
        inter = load_movielens(ml_latest_small, min_rating=4.0)
    assert len(inter) == (ratings["rating"] >= 4).sum()
    assert f"removed {(ratings['rating'] < 4).sum()} of 100836" in caplog.text
    assert inter.frame["weight"].min() == 4.0


def test_ml_100k_layout(tmp_path):
    (tmp_path / "u.data").write_text(
        "1\t10\t5\t881250949\n2\t10\t3\t891717742\n1\t20\t4\t878887116\n"
    )
    (tmp_path / "u.genre").write_text("unknown|0\nAction|1\nComedy|2\n\n")
    (tmp_path / "u.item").write_text(
        "10|Toy Story (1995)|01-Jan-1995||http://x|0|0|1\n"
        "20|GoldenEye (1995)|01-Jan-1995||http://y|0|1|1\n",
        encoding="latin-1",
    )
    inter = load_movielens(tmp_path, name="ml-100k")
    assert (len(inter), inter.n_users, inter.n_items) == (3, 2, 2)
    assert inter.frame["timestamp"].tolist() == [878887116.0, 881250949.0, 891717742.0]
    assert inter.frame["weight"].tolist() == [4.0, 5.0, 3.0]
    # Categories are codes of the sorted first-genre names: Action=0, Comedy=1.
    assert inter.item_category.tolist() == [1, 0]


def test_ml_100k_without_u_item_has_no_categories(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t5\t881250949\n")
    assert load_movielens(tmp_path / "u.data").item_category is None


def test_ml_1m_layout(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n")
    (tmp_path / "movies.dat").write_text(
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "1193::One Flew Over the Cuckoo's Nest: A Novel (1975)::Drama\n",
        encoding="latin-1",
    )
    inter = load_movielens(tmp_path)
    assert inter.item_ids.tolist() == [661, 1193]
    assert inter.item_category.tolist() == [0, 1]  # Animation, Drama
    assert inter.frame["item"].tolist() == [1, 0]  # sorted by time


def test_movie_missing_from_movies_csv_gets_the_unknown_category(tmp_path):
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,10\n1,2,3.5,20\n"
    )
    (tmp_path / "movies.csv").write_text('movieId,title,genres\n1,"Toy Story, The",Comedy\n')
    inter = load_movielens(tmp_path)
    # Codes follow the sorted names: "(unknown)" = 0 sorts before "Comedy" = 1.
    assert inter.item_category.tolist() == [1, 0]


def test_missing_folder_names_the_path(tmp_path):
    with pytest.raises(DataError, match=r"nowhere does not exist.*ratings\.csv"):
        load_movielens(tmp_path / "nowhere")


def test_folder_without_ratings_lists_the_files_looked_for(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"no MovieLens ratings file.*'ratings\.dat', 'u\.data'"):
        load_movielens(tmp_path)


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("ratings.csv", "userId,movieId,rating,timestamp\n1,2,good,3\n", "non-numeric rating"),
        ("ratings.csv", "user,movie,stars\n1,2,3\n", r"missing column\(s\)"),
        ("ratings.csv", "", "cannot be read"),
        ("ratings.dat", "1::2::3\n", "4 '::'-separated fields"),
        ("u.data", "1 2 3 4\n", "4 tab-separated fields"),
    ],
)
def test_malformed_content_raises_data_error(tmp_path, file, content, message):
    (tmp_path / file).write_text(content)
    with pytest.raises(DataError, match=message):
        load_movielens(tmp_path)
