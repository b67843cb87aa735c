"""recsys: decide how to redesign a two-stage recommender with measured numbers.

Data flows one way: data -> stages -> pipeline -> profile -> sim -> cost/plan -> report.
"""

__version__ = "0.1.0"
