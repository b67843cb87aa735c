"""MovieLens from a local folder, in any of the official layouts.

=====================  ==============================================  ===========================
layout                 ratings file                                    genres (first -> category)
=====================  ==============================================  ===========================
ml-latest(-small),     ``ratings.csv``: ``userId,movieId,rating,       ``movies.csv``:
ml-20m, ml-25m         timestamp`` with a header                       ``movieId,title,genres``
ml-1m, ml-10m          ``ratings.dat``: ``UserID::MovieID::Rating::    ``movies.dat``:
                       Timestamp``                                     ``MovieID::Title::Genres``
ml-100k                ``u.data``: ``user item rating timestamp``,     ``u.item`` (19 genre flags,
                       tab separated, no header                        names from ``u.genre``)
=====================  ==============================================  ===========================

The weight of an interaction is its rating; ``item_category`` is the item's first genre, coded
by the sorted genre names (``"(unknown)"`` for a movie missing from the genre file).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.interactions import Interactions, from_raw
from recsys.errors import DataError

log = logging.getLogger(__name__)

RATING_COLUMNS = ("user", "item", "rating", "timestamp")
UNKNOWN_GENRE = "(unknown)"
# ml-100k genre flag order, used when u.genre is absent.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def _numeric(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """All of ``RATING_COLUMNS`` as numbers, or a DataError naming the first bad line."""
    out = {}
    for col in RATING_COLUMNS:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if bad.size:
            raise DataError(
                f"{path}: {bad.size} rows have a missing or non-numeric {col} "
                f"(first at data row {bad[0] + 1}: {frame[col].iloc[bad[0]]!r})"
            )
        out[col] = values.to_numpy()
    return pd.DataFrame(out)


def _read(path: Path, **kwargs: object) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)  # type: ignore[call-overload]
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, UnicodeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: cannot be read as MovieLens ({reason})") from err


def _read_ratings_csv(path: Path) -> pd.DataFrame:
    frame = _read(path)
    expected = ["userId", "movieId", "rating", "timestamp"]
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; found {list(frame.columns)} "
            f"(expected a header {','.join(expected)})"
        )
    return _numeric(frame[expected].set_axis(list(RATING_COLUMNS), axis=1), path)


def _read_ratings_dat(path: Path) -> pd.DataFrame:
    # Splitting on ':' keeps the fast C parser; fields 0, 2, 4, 6 are the values of '::'.
    frame = _read(path, sep=":", header=None, dtype=str, keep_default_na=False)
    if frame.shape[1] != 7:
        raise DataError(
            f"{path}: expected 4 '::'-separated fields per line "
            "(UserID::MovieID::Rating::Timestamp)"
        )
    return _numeric(frame[[0, 2, 4, 6]].set_axis(list(RATING_COLUMNS), axis=1), path)


def _read_u_data(path: Path) -> pd.DataFrame:
    frame = _read(path, sep="\t", header=None, dtype=str, keep_default_na=False)
    if frame.shape[1] != 4:
        raise DataError(
            f"{path}: expected 4 tab-separated fields per line (user item rating timestamp), "
            f"found {frame.shape[1]}"
        )
    return _numeric(frame.set_axis(list(RATING_COLUMNS), axis=1), path)


def _first_genre(ids: pd.Series, genres: pd.Series, path: Path) -> pd.Series:
    raw = pd.to_numeric(ids, errors="coerce")
    if raw.isna().any():
        raise DataError(f"{path}: non-numeric movie ids")
    first = genres.astype(str).str.split("|").str[0]
    return pd.Series(first.to_numpy(), index=raw.astype(np.int64).to_numpy())


def _read_movies_csv(path: Path) -> pd.Series:
    frame = _read(path, dtype=str, keep_default_na=False)
    if not {"movieId", "genres"} <= set(frame.columns):
        raise DataError(f"{path}: expected columns movieId,title,genres; found {list(frame)}")
    return _first_genre(frame["movieId"], frame["genres"], path)


def _read_movies_dat(path: Path) -> pd.Series:
    lines = [ln for ln in path.read_text(encoding="latin-1").splitlines() if ln.strip()]
    fields = [ln.split("::") for ln in lines]
    if any(len(f) != 3 for f in fields):
        raise DataError(f"{path}: expected MovieID::Title::Genres on every line")
    return _first_genre(pd.Series([f[0] for f in fields]), pd.Series([f[2] for f in fields]), path)


def _read_u_item(path: Path) -> pd.Series:
    genre_file = path.with_name("u.genre")
    names: list[str] = list(ML100K_GENRES)
    if genre_file.exists():
        pairs = [ln.split("|") for ln in genre_file.read_text(encoding="latin-1").splitlines()]
        names = [p[0] for p in pairs if len(p) == 2 and p[0]]
    frame = _read(path, sep="|", header=None, encoding="latin-1", dtype=str)
    if frame.shape[1] != 5 + len(names):
        raise DataError(f"{path}: expected 5 + {len(names)} '|'-separated fields per line")
    flags = frame.iloc[:, 5:].apply(pd.to_numeric, errors="coerce").fillna(0).to_numpy()
    first = np.where(flags.max(axis=1) > 0, flags.argmax(axis=1), 0)
    return _first_genre(frame[0], pd.Series(np.asarray(names)[first]), path)


Reader = Callable[[Path], pd.DataFrame]
GenreReader = Callable[[Path], pd.Series]
# (ratings file, its reader, genre file, its reader), tried in this order.
LAYOUTS: tuple[tuple[str, Reader, str, GenreReader], ...] = (
    ("ratings.csv", _read_ratings_csv, "movies.csv", _read_movies_csv),
    ("ratings.dat", _read_ratings_dat, "movies.dat", _read_movies_dat),
    ("u.data", _read_u_data, "u.item", _read_u_item),
)


def _find_layout(path: Path) -> tuple[Path, Reader, Path, GenreReader]:
    folder = path.parent if path.is_file() else path
    looked_for = [name for name, *_ in LAYOUTS]
    if not folder.is_dir():
        raise DataError(f"MovieLens folder {path} does not exist (looking for {looked_for})")
    for ratings, reader, genres, genre_reader in LAYOUTS:
        if path.is_file() and path.name != ratings:
            continue
        if (folder / ratings).is_file():
            return folder / ratings, reader, folder / genres, genre_reader
    raise DataError(f"no MovieLens ratings file in {path}: looked for {looked_for}")


def _item_category(item_ids: np.ndarray, first_genre: pd.Series) -> np.ndarray:
    genre = first_genre[~first_genre.index.duplicated()].reindex(item_ids).fillna(UNKNOWN_GENRE)
    codes, _ = pd.factorize(genre.astype(str), sort=True)
    return codes.astype(np.int64)


def load_movielens(
    path: str | Path, min_rating: float | None = None, name: str = "movielens"
) -> Interactions:
    """Ratings of a MovieLens folder (or its ratings file) as :class:`Interactions`.

    ``min_rating`` keeps only ratings at or above it (the number removed is logged);
    the weight of each kept interaction is its rating.
    """
    path = Path(path).expanduser()
    ratings_file, reader, genre_file, genre_reader = _find_layout(path)
    frame = reader(ratings_file)
    if frame.empty:
        raise DataError(f"{ratings_file}: no ratings")
    if min_rating is not None:
        keep = frame["rating"].to_numpy() >= float(min_rating)
        log.info(
            "%s: min_rating=%s removed %d of %d ratings",
            ratings_file,
            min_rating,
            int((~keep).sum()),
            len(frame),
        )
        frame = frame.loc[keep]
        if frame.empty:
            raise DataError(f"{ratings_file}: no rating is >= min_rating={min_rating}")
    inter = from_raw(
        frame["user"].to_numpy(np.int64),
        frame["item"].to_numpy(np.int64),
        frame["timestamp"].to_numpy(np.float64),
        frame["rating"].to_numpy(np.float32),
        name=name,
    )
    if not genre_file.is_file():
        log.info("%s: no %s, so no item categories", ratings_file.parent, genre_file.name)
        return inter
    category = _item_category(np.asarray(inter.item_ids), genre_reader(genre_file))
    return replace(inter, item_category=category)
