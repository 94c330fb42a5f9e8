"""Arithmetic on the seven expression scores: means, the dominant expression and its emoji."""

from __future__ import annotations

from collections.abc import Iterable

from emotion.v1 import common_pb2

# ExpressionScores fields in FER-2013 order; Expression enum value = index + 1.
SCORE_FIELDS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# The same emoji inference puts on each face (services/inference/handlers.py).
EMOJI = {
    common_pb2.EXPRESSION_ANGRY: "\N{ANGRY FACE}",
    common_pb2.EXPRESSION_DISGUST: "\N{NAUSEATED FACE}",
    common_pb2.EXPRESSION_FEAR: "\N{FEARFUL FACE}",
    common_pb2.EXPRESSION_HAPPY: "\N{GRINNING FACE}",
    common_pb2.EXPRESSION_SAD: "\N{CRYING FACE}",
    common_pb2.EXPRESSION_SURPRISE: "\N{FACE WITH OPEN MOUTH}",
    common_pb2.EXPRESSION_NEUTRAL: "\N{NEUTRAL FACE}",
}


def as_vector(scores: common_pb2.ExpressionScores) -> list[float]:
    return [getattr(scores, name) for name in SCORE_FIELDS]


def from_vector(values: Iterable[float]) -> common_pb2.ExpressionScores:
    return common_pb2.ExpressionScores(**dict(zip(SCORE_FIELDS, values, strict=False)))


def mean(vectors: list[list[float]]) -> list[float]:
    if not vectors:
        return [0.0] * len(SCORE_FIELDS)
    return [sum(column) / len(vectors) for column in zip(*vectors, strict=False)]


def dominant(vector: list[float]) -> int:
    """The Expression of the highest score; UNSPECIFIED for an all-zero vector (no face)."""
    if not any(vector):
        return common_pb2.EXPRESSION_UNSPECIFIED
    return max(range(len(vector)), key=vector.__getitem__) + 1


def emoji(expression: int) -> str:
    return EMOJI.get(expression, "")
