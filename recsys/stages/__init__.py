"""The recommendation stages: candidate retrieval and ranking, and what they exchange.

- :mod:`~recsys.stages.base`: :class:`Candidates`, the ``Retriever`` / ``Ranker`` protocols.
- :mod:`~recsys.stages.embeddings`: two-tower user/item embeddings (torch).
- :mod:`~recsys.stages.retrieval`: FAISS retrieval (exact, IVF, IVF-PQ, HNSW, SQ8, any factory
  string) and the popularity baseline.
- :mod:`~recsys.stages.neural_retrieval`: ``neural_full``, an MLP scoring the whole catalogue.
- :mod:`~recsys.stages.ranking`: LightGBM LambdaRank, popularity and keep-order rankers.
- :mod:`~recsys.stages.neural`: MLP rankers (small/large), the distilled student.
- :mod:`~recsys.stages.onnx_backend`: ONNX export, ONNX Runtime and int8 serving.
"""
